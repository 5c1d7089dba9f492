"""test_corrupt.py: issue 8 point 15, a SQLite store damaged in the middle of the file.

At start every connection runs PRAGMA quick_check and the server refuses the file with a clear
message; damage found at run time (SQLITE_CORRUPT) stops every write (503) and fails /healthz
(503), loudly in the log, instead of answering 500 "malformed" now and then and taking writes."""
import os
import random
import shutil
import sqlite3
import subprocess
import tempfile
import time
import unittest

from harness import BIN, Env

PAGE = 4096


def schema_pages(path):
    """The pages of SQLite's own schema table (dbstat), so damage can spare them: a damaged schema
    is refused as soon as the file is opened (`journal_mode`), before `quick_check` runs, and
    where the schema's pages lie depends on how many tables the migrations made."""
    c = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return {p for (p,) in c.execute("SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'")}
    except sqlite3.OperationalError:  # no dbstat in this SQLite: spare nothing
        return set()
    finally:
        c.close()


def damage_middle(path):
    """Overwrite the middle third of the file with garbage, page-aligned (header page and the
    schema's pages kept: the data is what is damaged)."""
    size = os.path.getsize(path)
    start = max(PAGE, (size // 3) // PAGE * PAGE)
    end = (2 * size // 3) // PAGE * PAGE
    assert end > start, size
    keep = schema_pages(path)
    rnd = random.Random(8)
    with open(path, "r+b") as f:
        for off in range(start, end, PAGE):
            junk = bytes(rnd.getrandbits(8) for _ in range(PAGE))
            if off // PAGE + 1 in keep:  # dbstat numbers pages from 1
                continue
            f.seek(off)
            f.write(junk)
        f.flush()
        os.fsync(f.fileno())


@unittest.skipIf(os.environ.get("MIVAULT_TEST_STORE") == "postgresql", "a SQLite file")
class CorruptSqliteTest(unittest.TestCase):
    def setUp(self):
        self.env = e = Env(self, pg=False)
        self.addCleanup(e.close)
        e.start_server()
        e.vault("dev")
        vm = e.vm("vm1")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", e.vault_scope("dev"))
        _, self.agent_port = e.start_agent("vm1", join=vm["joinToken"])
        self.token = e.token(self.agent_port, e.vault_resource())
        self.names = ["s%03d" % i for i in range(120)]
        for n in self.names:
            r = e.kv("PUT", "dev", "/secrets/" + n, token=self.token, body={"value": n * 700})
            self.assertEqual(r.status, 200, r.body)
        e.stop(e.server)  # checkpoints the WAL into the file
        self.db = os.path.join(e.dir, "mivault.db")

    def test_start_refused_on_a_damaged_file(self):
        e = self.env
        damage_middle(self.db)
        p = e.spawn("server-corrupt", "server")
        self.assertIsNotNone(p.wait(60), "the server started on a corrupt file")
        self.assertNotEqual(p.returncode, 0)
        log = e.logs[-1]
        log.flush()
        log.seek(0)
        text = log.read()
        self.assertIn("corrupt", text.lower())
        self.assertIn("quick_check", text)

    def test_damage_at_run_time_stops_writes(self):
        e = self.env
        e.start_server()
        self.assertEqual(e.https("GET", "/healthz").status, 200)
        damage_middle(self.db)
        # Every connection read the whole (small) file into its page cache at open (quick_check);
        # a commit anywhere makes them read the file again.
        e.vault("other")
        errors = 0
        for n in self.names:
            r = e.kv("GET", "dev", "/secrets/" + n, token=self.token)
            if r.status != 200:
                errors += 1
        r = e.kv("GET", "dev", "/secrets", token=self.token)
        errors += r.status != 200
        self.assertGreater(errors, 0, "no read reached the damaged pages")
        r = e.kv("PUT", "dev", "/secrets/after", token=self.token, body={"value": "v"})
        self.assertEqual(r.status, 503, r.body)
        # The 503 must be the corruption (flagged for every connection of the process to the
        # file), not some other unavailability: say which if not.
        self.assertIn("THE DATABASE FILE IS CORRUPT", self.server_log(), "PUT 503 for another reason")
        # /healthz: each event loop keeps its last probe for up to HEALTH_CACHE_MS (1 s) and a
        # new connection lands on any loop. Wait for a first 503, let every loop's cached answer
        # expire, then every request, on whichever loop, must say 503.
        end = time.time() + 10
        while e.https("GET", "/healthz").status != 503 and time.time() < end:
            time.sleep(0.2)
        time.sleep(1.2)
        statuses = [e.https("GET", "/healthz").status for _ in range(12)]
        self.assertEqual(statuses, [503] * 12, self.server_log()[-3000:])
        e.server.terminate()
        e.server.wait(15)

    def server_log(self):
        log = self.env.logs[-1]
        log.flush()
        log.seek(0)
        return log.read()


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(shutil.which("strace"), "strace is not installed")
class KeyFileDurabilityTest(unittest.TestCase):
    """After master.key (and every other state file) is renamed into place, init fsyncs the
    directory: the new entry must survive a power loss like the database that needs the key."""

    def test_directory_fsynced_after_key_rename(self):
        d = tempfile.mkdtemp(prefix="mivault-it.")
        self.addCleanup(shutil.rmtree, d, True)
        trace = os.path.join(d, "trace")
        state = os.path.join(d, "s")
        # LeakSanitizer cannot run under ptrace (the ASan build would exit 66): leaks are
        # checked by every other test, not under strace.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
        r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,rename,fsync", "-o", trace,
                            BIN, "init", "--state", state], capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(trace) as f:
            lines = f.read().splitlines()
        for name in ("master.key", "admin.key", "ca.key"):
            at = [i for i, l in enumerate(lines) if "rename(" in l and l.rstrip().split(", ")[-1].startswith('"%s/%s"' % (state, name))]
            self.assertTrue(at, name)
            rest = lines[at[0] + 1:]
            opened = [l for l in rest if "O_DIRECTORY" in l and '"%s"' % state in l]
            self.assertTrue(opened, "%s: its directory is not opened after the rename" % name)
            fd = opened[0].rsplit("=", 1)[1].strip()
            pid = opened[0].split()[0]
            self.assertTrue(any(l.startswith(pid) and "fsync(%s)" % fd in l for l in rest),
                            "%s: its directory is not fsynced" % name)
