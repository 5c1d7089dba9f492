"""Issue 8 points 7 and 8: started as root, the processes run as the state dir's user with no
capability, and are not dumpable; a workload of another user reads env.sh and the CA bundle and
gets tokens, and cannot read a key. Needs root (CI runs the suite as root)."""
import json
import os
import pwd
import subprocess
import unittest

from harness import BIN, MivaultTest

KEYS = ("admin.key", "master.key", "ca.key", "server.key")


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    return None


def as_nobody(code):
    """Runs Python code as nobody:nogroup; returns (returncode, stdout)."""
    nobody = pwd.getpwnam("nobody")

    def pre():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    r = subprocess.run(["python3", "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=pre, cwd="/")
    return r.returncode, r.stdout + r.stderr


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class RunAsStateUserTest(MivaultTest):
    def setUp(self):
        super().setUp()
        e = self.env
        self.user = pwd.getpwnam("mivault")
        vm = e.vm("pvm")
        e.grant(vm["identity"]["principalId"], "Key Vault Secrets User", "/")
        self.agent, self.port = e.start_agent("pvm", join=vm["joinToken"])
        # They listen first, then hand the state dir over and switch: wait for the switch.
        for p in (e.server, self.agent):
            self.wait_switched(p.pid)

    def wait_switched(self, pid, timeout=15):
        import time
        end = time.time() + timeout
        while time.time() < end:
            if status(pid)["Uid"][0] == str(self.user.pw_uid):
                return
            time.sleep(0.05)
        self.fail("process %d still runs as %s" % (pid, status(pid)["Uid"]))

    def assert_dropped(self, pid):
        st = status(pid)
        self.assertEqual(st["Uid"], [str(self.user.pw_uid)] * 4, st["Uid"])
        self.assertEqual(st["Gid"], [str(self.user.pw_gid)] * 4, st["Gid"])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            self.assertEqual(st[cap], ["0000000000000000"], cap)
        self.assertEqual(st["NoNewPrivs"], ["1"])

    def test_server_and_agent_run_as_mivault_without_capabilities(self):
        """Point 7."""
        self.assert_dropped(self.env.server.pid)
        self.assert_dropped(self.agent.pid)

    def private_files(self):
        """What a workload must not read: the keys, and the store (the SQLite file; on
        PostgreSQL config.json, which then holds the store's URL and is 0600 for that reason)."""
        return KEYS + (("config.json",) if self.env.store_url else ("mivault.db",))

    def test_state_dir_belongs_to_mivault_and_keys_are_0600(self):
        d = self.env.dir
        for name in self.private_files():
            st = os.stat(os.path.join(d, name))
            self.assertEqual(st.st_uid, self.user.pw_uid, name)
            self.assertEqual(st.st_mode & 0o777, 0o600, name)
        node = os.path.join(d, "agents", "pvm", "node.key")
        self.assertEqual(os.stat(node).st_uid, self.user.pw_uid)
        self.assertEqual(os.stat(node).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(d).st_mode & 0o777, 0o711)
        # agents/ and agents/VM/ are 0711: a workload opens agents/VM/env.sh by name, lists nothing
        self.assertEqual(os.stat(os.path.join(d, "agents")).st_mode & 0o777, 0o711)
        self.assertEqual(os.stat(os.path.join(d, "agents", "pvm")).st_mode & 0o777, 0o711)

    def test_workload_of_another_user_gets_tokens_not_keys(self):
        d = self.env.dir
        env_sh = os.path.join(self.env.dir, "agents", "pvm", "env.sh")
        code = """
import json, os, sys, urllib.request
d = %r
for name in %r:
    open(os.path.join(d, name)).read()
open(%r).read()
denied = []
for name in %r + ("agents/pvm/node.key",):
    try:
        open(os.path.join(d, name)).read()
    except PermissionError:
        denied.append(name)
try:
    os.listdir(d)
except PermissionError:
    denied.append("listing")
req = urllib.request.Request("http://127.0.0.1:%d/metadata/identity/oauth2/token"
                             "?api-version=2018-02-01&resource=https%%3A%%2F%%2Fvault.azure.net",
                             headers={"Metadata": "true"})
tok = json.load(urllib.request.urlopen(req))["access_token"]
print(json.dumps({"denied": denied, "token": len(tok) > 100}))
""" % (d, ("ca.pem", "ca-bundle.pem") + (() if self.env.store_url else ("config.json",)), env_sh,
       self.private_files(), self.port)
        rc, out = as_nobody(code)
        self.assertEqual(rc, 0, out)
        res = json.loads(out.strip().splitlines()[-1])
        self.assertTrue(res["token"])
        self.assertEqual(sorted(res["denied"]),
                         sorted(self.private_files() + ("agents/pvm/node.key", "listing")))

    def test_not_dumpable_and_no_core_files(self):
        """Point 8: PR_SET_DUMPABLE 0 shows as /proc/PID owned by root although the process runs
        as mivault; RLIMIT_CORE is 0."""
        for p in (self.env.server, self.agent):
            self.assertEqual(os.stat("/proc/%d/status" % p.pid).st_uid, 0)
            self.assertEqual(status(p.pid)["Uid"][0], str(self.user.pw_uid))
            self.assertEqual(core_limit(p.pid), ["0", "0"])

    def test_debug_flag_keeps_the_process_dumpable(self):
        e = self.env
        os.environ["MIVAULT_CORE_DUMPS"] = "1"
        try:
            vm = e.vm("dvm")
            p, _ = e.start_agent("dvm", join=vm["joinToken"])
        finally:
            del os.environ["MIVAULT_CORE_DUMPS"]
        self.wait_switched(p.pid)
        self.assertEqual(os.stat("/proc/%d/status" % p.pid).st_uid, self.user.pw_uid)
        self.assertNotEqual(core_limit(p.pid), ["0", "0"])

    def test_init_user_flag_and_later_starts_keep_the_owner(self):
        """init --user NAME hands the dir to NAME; a root start later keeps it."""
        import tempfile
        import shutil
        d = tempfile.mkdtemp(prefix="mivault-it-user.")
        self.addCleanup(shutil.rmtree, d, True)
        state = os.path.join(d, "s")
        r = subprocess.run([BIN, "init", "--user", "nobody", "--state", state], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        nobody = pwd.getpwnam("nobody")
        self.assertEqual(os.stat(state).st_uid, nobody.pw_uid)
        self.assertEqual(os.stat(os.path.join(state, "master.key")).st_uid, nobody.pw_uid)
        r = subprocess.run([BIN, "init", "--user", "no-such-user-x", "--state", state],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)


@unittest.skipUnless(os.geteuid() == 0, "needs root")
class UpAsNonRootTest(unittest.TestCase):
    """`mivault up` by a user who is not root: nothing to switch, everything works."""

    def test_up_as_nobody(self):
        import shutil
        import tempfile
        import time
        from harness import free_port, wait_port
        d = tempfile.mkdtemp(prefix="mivault-it-up.")
        self.addCleanup(shutil.rmtree, d, True)
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        state = os.path.join(d, "s")
        sp, ap = free_port(), free_port()
        # nobody may not enter the checkout (CI clones into a 0700 directory): run a copy
        binary = os.path.join(d, "mivault")
        shutil.copy2(BIN, binary)
        os.chmod(binary, 0o755)

        def pre():
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        log = open(os.path.join(d, "up.log"), "w+")
        p = subprocess.Popen([binary, "up", "--server-port", str(sp), "--agent-port", str(ap),
                              "--state", state], stdout=log, stderr=log, preexec_fn=pre, cwd="/")
        try:
            wait_port(ap, p, timeout=60)
            deadline = time.time() + 30
            while not os.path.exists(os.path.join(state, "env.sh")) and time.time() < deadline:
                time.sleep(0.2)
            self.assertEqual(status(p.pid)["Uid"][0], str(nobody.pw_uid))
            self.assertEqual(core_limit(p.pid), ["0", "0"])
            import urllib.request
            req = urllib.request.Request(
                "http://127.0.0.1:%d/metadata/identity/oauth2/token?api-version=2018-02-01"
                "&resource=https%%3A%%2F%%2Fvault.azure.net" % ap, headers={"Metadata": "true"})
            self.assertIn("access_token", json.load(urllib.request.urlopen(req, timeout=30)))
        finally:
            p.terminate()
            p.wait(20)
            log.seek(0)
            text = log.read()
            log.close()
        self.assertEqual(p.returncode, 0, text)
