"""An agent on another machine (docs/agent.md): its own state dir, joined with one command.

The "other machine" is a second, empty state dir on loopback; the agent knows nothing but the
join token and the server URL. The token pins the server's CA; the agent fetches the CA
untrusted, checks the pin, and from then on verifies TLS with it."""
import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import BIN, MivaultTest, free_port, wait_port

RESOURCE = "https://vault.azure.net"


def read(path):
    with open(path) as f:
        return f.read()


def read_when_written(path, timeout=15.0):
    """env.sh is written (atomically, fsync'ed) just after the agent starts listening."""
    end = time.time() + timeout
    while not os.path.exists(path) and time.time() < end:
        time.sleep(0.05)
    return read(path)


class RemoteAgentTest(MivaultTest):
    def setUp(self):
        super().setUp()
        self.adir = tempfile.mkdtemp(prefix="mivault-agent.")
        self.addCleanup(shutil.rmtree, self.adir, True)
        self.server_url = "https://127.0.0.1:%d" % self.env.server_port

    def agent(self, *args, port=None, stdin=None):
        """`mivault agent ARGS --state ADIR`, logged with the env's children (sanitizer scan)."""
        e = self.env
        log = open(os.path.join(e.dir, "remote-agent.%d.log" % len(e.logs)), "w+")
        e.logs.append(log)
        p = subprocess.Popen([BIN, "agent"] + list(args) + ["--state", self.adir], stdout=log,
                             stderr=log, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        e.procs.append(p)
        if stdin:
            p.stdin.write(stdin.encode())
            p.stdin.close()
        if port:
            wait_port(port, p)
        return p

    def agent_fails(self, *args):
        r = subprocess.run([BIN, "agent"] + list(args) + ["--state", self.adir], capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        return r.stderr

    def token_file(self, token):
        path = os.path.join(self.env.dir, "join.txt")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, (token + "\n").encode())
        os.close(fd)
        return path

    def test_join_from_an_empty_state_dir_then_restart_with_vm_only(self):
        e = self.env
        vm = e.vm("far")
        port = free_port()
        p = self.agent("--vm", "far", "--join-file", self.token_file(vm["joinToken"]), "--server",
                       self.server_url, "--listen", "127.0.0.1:%d" % port, port=port)
        tok = e.token(port, RESOURCE)
        self.assertTrue(tok)
        # the pinned CA is the server's, written where the agent trusts it from
        self.assertEqual(read(os.path.join(self.adir, "ca.pem")), read(os.path.join(e.dir, "ca.pem")))
        saved = json.loads(read(os.path.join(self.adir, "agents", "far", "agent.json")))
        self.assertEqual(saved["server"], self.server_url)
        self.assertEqual(saved["listen"], "127.0.0.1:%d" % port)
        self.assertEqual(saved["caFile"], os.path.join(self.adir, "ca.pem"))
        env = read_when_written(os.path.join(self.adir, "env.sh"))
        self.assertIn("export AZURE_POD_IDENTITY_AUTHORITY_HOST='http://127.0.0.1:%d'" % port, env)
        self.assertIn("export MSAL_MANAGED_IDENTITY_ENDPOINT='http://127.0.0.1:%d/metadata/identity/oauth2/token'"
                      % port, env)
        bundle = os.path.join(self.adir, "ca-bundle.pem")
        self.assertIn("export REQUESTS_CA_BUNDLE='%s'" % bundle, env)
        self.assertIn("export SSL_CERT_FILE='%s'" % bundle, env)
        self.assertIn("export NODE_EXTRA_CA_CERTS='%s'" % os.path.join(self.adir, "ca.pem"), env)
        self.assertIn("export MIVAULT_HOME='%s'" % self.adir, env)
        self.assertIn(read(os.path.join(e.dir, "ca.pem")), read(bundle))
        self.assertNotIn(vm["joinToken"].split(".")[1], env)
        # nothing of the server's state is there
        for f in ("config.json", "mivault.db", "master.key", "ca.key", "admin.key"):
            self.assertFalse(os.path.exists(os.path.join(self.adir, f)), f)

        e.stop(p)
        # later starts: only --vm and --state
        p = self.agent("--vm", "far", port=port)
        self.assertTrue(e.token(port, RESOURCE + "/"))
        e.stop(p)

    def test_wrong_pin_is_refused_and_spends_nothing(self):
        e = self.env
        vm = e.vm("far")
        good = vm["joinToken"]
        secret, pin = good.rsplit(":", 1)
        bad_pin = ("A" if pin[0] != "A" else "B") + pin[1:]
        port = free_port()
        err = self.agent_fails("--vm", "far", "--join-file", self.token_file(secret + ":" + bad_pin),
                               "--server", self.server_url, "--listen", "127.0.0.1:%d" % port)
        self.assertIn("the server's CA does not match the join token's pin", err)
        self.assertFalse(os.path.exists(os.path.join(self.adir, "ca.pem")))
        # not a token at all
        err = self.agent_fails("--vm", "far", "--join-file", self.token_file("mvj_old"),
                               "--server", self.server_url, "--listen", "127.0.0.1:%d" % port)
        self.assertIn("not a join token", err)
        # no server known yet
        err = self.agent_fails("--vm", "far", "--listen", "127.0.0.1:%d" % port)
        self.assertIn("--join TOKEN --server URL", err)
        # the refused attempts did not spend the token
        p = self.agent("--vm", "far", "--join-file", self.token_file(good), "--server", self.server_url,
                       "--listen", "127.0.0.1:%d" % port, port=port)
        self.assertTrue(e.token(port, RESOURCE))
        e.stop(p)

    def test_join_token_not_in_cmdline(self):
        e = self.env
        vm = e.vm("far")
        port = free_port()
        p = self.agent("--vm", "far", "--join", vm["joinToken"], "--server", self.server_url,
                       "--listen", "127.0.0.1:%d" % port, port=port)
        with open("/proc/%d/cmdline" % p.pid, "rb") as f:
            cmdline = f.read()
        self.assertIn(b"--join", cmdline)
        self.assertNotIn(vm["joinToken"].encode(), cmdline)
        self.assertNotIn(vm["joinToken"].split(".")[1].encode(), cmdline)
        self.assertTrue(e.token(port, RESOURCE))
        e.stop(p)

        # --join - : the token on standard input
        vm = e.vm("far2")
        shutil.rmtree(self.adir)
        os.mkdir(self.adir)
        port = free_port()
        p = self.agent("--vm", "far2", "--join", "-", "--server", self.server_url,
                       "--listen", "127.0.0.1:%d" % port, port=port, stdin=vm["joinToken"] + "\n")
        with open("/proc/%d/cmdline" % p.pid, "rb") as f:
            self.assertNotIn(vm["joinToken"].split(".")[1].encode(), f.read())
        self.assertTrue(e.token(port, RESOURCE))
        e.stop(p)

    def test_ca_endpoint(self):
        r = self.env.https("GET", "/mivault/ca.pem")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "application/x-pem-file")
        with open(os.path.join(self.env.dir, "ca.pem"), "rb") as f:
            self.assertEqual(r.body, f.read())
        self.assertEqual(self.env.https("POST", "/mivault/ca.pem", body="").status, 405)
