"""Per-process identities (docs/agent.md "Per-process identities"): `mivault vm identity bind`
issues a user-assigned identity only to local callers with a uid (or in a cgroup); two local
users ask one agent, each from its own process."""
import json
import os
import pwd
import subprocess
import unittest

from harness import MivaultTest

CLIENT = r"""
import json, sys, urllib.request, urllib.error
port, cid = sys.argv[1], sys.argv[2]
url = "http://127.0.0.1:%s/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%%3A%%2F%%2Fvault.azure.net" % port
if cid:
    url += "&client_id=" + cid
req = urllib.request.Request(url, headers={"Metadata": "true"})
try:
    with urllib.request.urlopen(req, timeout=20) as r:
        print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": json.loads(e.read())}))
"""

USERS = ("mvpp-alice", "mvpp-bob")


def can_switch_users():
    return os.geteuid() == 0 and os.path.exists("/usr/sbin/runuser") and os.path.exists("/usr/sbin/useradd")


@unittest.skipUnless(can_switch_users(), "needs root, runuser and useradd (two local users)")
class BindingsTest(MivaultTest):
    created = []

    @classmethod
    def setUpClass(cls):
        for u in USERS:
            try:
                pwd.getpwnam(u)
            except KeyError:
                subprocess.run(["/usr/sbin/useradd", "-M", "-r", "-s", "/usr/sbin/nologin", u], check=True)
                cls.created.append(u)

    @classmethod
    def tearDownClass(cls):
        for u in cls.created:
            subprocess.run(["/usr/sbin/userdel", u], check=False)
        cls.created = []

    def setUp(self):
        super().setUp()
        e = self.env
        e.cli("identity", "create", "--name", "bound1")
        e.cli("identity", "create", "--name", "free1")
        self.bound = e.cli("identity", "show", "--name", "bound1")["properties"]["clientId"]
        self.free = e.cli("identity", "show", "--name", "free1")["properties"]["clientId"]
        vm = e.vm("ppvm", system=False, uai=["bound1", "free1"])
        _, self.port = e.start_agent("ppvm", join=vm["joinToken"])
        self.uid = {u: pwd.getpwnam(u).pw_uid for u in USERS}

    def ask(self, user, cid):
        r = subprocess.run(["/usr/sbin/runuser", "-u", user, "--", "/usr/bin/python3", "-c", CLIENT,
                            str(self.port), cid or ""], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def assertToken(self, out, cid):
        self.assertEqual(out["status"], 200, out)
        self.assertEqual(out["body"]["client_id"], cid)

    def assertRefused(self, out):
        self.assertEqual(out["status"], 400, out)
        self.assertEqual(out["body"]["error"], "invalid_request")
        self.assertEqual(out["body"]["error_description"],
                         "Identity not found: it is bound to other local callers on this VM")

    def test_uid_binding(self):
        e = self.env
        alice, bob = USERS
        # the authority has seen this VM without bindings (it remembers that per store generation)
        self.assertToken(self.ask(bob, self.free), self.free)
        b = e.cli("vm", "identity", "bind", "--name", "ppvm", "--identity", "bound1",
                  "--uid", str(self.uid[alice]))
        self.assertEqual(b, {"identity": "bound1", "uid": self.uid[alice]})
        listed = e.cli("vm", "identity", "bindings", "--name", "ppvm")
        self.assertEqual(listed, [{"identity": "bound1", "uid": self.uid[alice]}])
        # the bound user gets it (twice: the second from the agent's cache, for that caller only)
        self.assertToken(self.ask(alice, self.bound), self.bound)
        self.assertToken(self.ask(alice, self.bound), self.bound)
        # the other user is refused, also after alice's token was cached
        self.assertRefused(self.ask(bob, self.bound))
        # an unbound identity is every local caller's
        self.assertToken(self.ask(alice, self.free), self.free)
        self.assertToken(self.ask(bob, self.free), self.free)
        self.assertRefused(self.ask(bob, self.bound))  # and the refusal was not cached as a token
        # unbind: Azure's behaviour again
        e.run("vm", "identity", "unbind", "--name", "ppvm", "--identity", "bound1",
              "--uid", str(self.uid[alice]))
        self.assertEqual(e.cli("vm", "identity", "bindings", "--name", "ppvm"), [])
        self.assertToken(self.ask(bob, self.bound), self.bound)
        self.assertToken(self.ask(alice, self.bound), self.bound)
        # unbinding what is not bound fails
        r = e.run("vm", "identity", "unbind", "--name", "ppvm", "--identity", "bound1",
                  "--uid", str(self.uid[alice]), check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_default_request_with_one_bound_identity(self):
        e = self.env
        alice, bob = USERS
        # a VM whose only identity is bound: the default request follows the binding
        e.cli("identity", "create", "--name", "only1")
        only = e.cli("identity", "show", "--name", "only1")["properties"]["clientId"]
        vm = e.vm("solo", system=False, uai=["only1"])
        _, port = e.start_agent("solo", join=vm["joinToken"])
        e.cli("vm", "identity", "bind", "--name", "solo", "--identity", "only1",
              "--uid", str(self.uid[bob]))
        self.port = port
        self.assertToken(self.ask(bob, None), only)
        self.assertRefused(self.ask(alice, None))
        # with a system-assigned identity the default request is that one's, bindings or not
        e.cli("identity", "create", "--name", "only2")
        only2 = e.cli("identity", "show", "--name", "only2")["properties"]["clientId"]
        vm = e.vm("withsys", system=True, uai=["only2"])
        _, self.port = e.start_agent("withsys", join=vm["joinToken"])
        e.cli("vm", "identity", "bind", "--name", "withsys", "--identity", "only2",
              "--uid", str(self.uid[bob]))
        out = self.ask(alice, None)
        self.assertEqual(out["status"], 200, out)
        self.assertNotEqual(out["body"]["client_id"], only2)
        self.assertRefused(self.ask(alice, only2))
        self.assertToken(self.ask(bob, only2), only2)

    def test_bind_refusals(self):
        e = self.env
        for args in (["--identity", "bound1"],
                     ["--identity", "bound1", "--uid", "1", "--cgroup", "/x"],
                     ["--identity", "bound1", "--cgroup", "relative"],
                     ["--identity", "bound1", "--cgroup", "/a/../b"],
                     ["--identity", "nosuch", "--uid", "1"]):
            r = e.run("vm", "identity", "bind", "--name", "ppvm", *args, check=False)
            self.assertNotEqual(r.returncode, 0, args)
        r = e.run("vm", "identity", "bind", "--name", "novm", "--identity", "bound1", "--uid", "1",
                  check=False)
        self.assertNotEqual(r.returncode, 0)

    def test_cgroup_binding(self):
        """A cgroup v2 binding: a process moved into a child cgroup gets the identity, the same
        user outside it does not."""
        e = self.env
        alice, _ = USERS
        root = "/sys/fs/cgroup/unified" if os.path.ismount("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
        with open("/proc/self/cgroup") as f:
            mine = [l.strip()[3:] for l in f if l.startswith("0::")]
        if not mine or not os.path.exists(os.path.join(root, "cgroup.procs")):
            self.skipTest("no cgroup v2 hierarchy")
        rel = mine[0].rstrip("/") + "/mvpp-%d" % os.getpid()
        path = root + rel
        made = []
        try:
            for p in (path, path + "/inner", path + "x"):
                os.mkdir(p)
                made.append(p)
        except OSError as err:
            for p in reversed(made):
                os.rmdir(p)
            self.skipTest("cgroup v2 not writable here: %s" % err)

        def ask_in(cg):
            # a shell moves itself into cg, then runs the client as alice
            r = subprocess.run(
                ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec /usr/sbin/runuser -u "$1" -- '
                 '/usr/bin/python3 -c "$2" "$3" "$4"', cg, alice, CLIENT, str(self.port), self.bound],
                capture_output=True, text=True, timeout=60)
            if r.returncode != 0 and "Permission denied" in r.stderr:
                self.skipTest("cannot move a process into the cgroup: " + r.stderr)
            self.assertEqual(r.returncode, 0, r.stderr)
            return json.loads(r.stdout)

        try:
            e.cli("vm", "identity", "bind", "--name", "ppvm", "--identity", "bound1", "--cgroup", rel)
            self.assertToken(ask_in(path), self.bound)
            self.assertToken(ask_in(path + "/inner"), self.bound)  # below the bound cgroup
            self.assertRefused(ask_in(path + "x"))  # a name that only starts the same
            self.assertRefused(self.ask(alice, self.bound))  # the same user outside it
        finally:
            for p in reversed(made):
                try:
                    os.rmdir(p)
                except OSError:
                    pass


if __name__ == "__main__":
    unittest.main()
