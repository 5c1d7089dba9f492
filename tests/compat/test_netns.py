"""IMDS at http://169.254.169.254:80 with no environment variable at all, as on an Azure VM.

The test makes a network namespace whose loopback also carries 169.254.169.254/32 and runs
`mivault up --imds-address 169.254.169.254` inside it: the server on the namespace's 127.0.0.1,
the agent bound to 169.254.169.254:80 (as root, then dropped to nobody). Unchanged clients run in
the namespace with env.sh's environment, which names no identity endpoint (neither
AZURE_POD_IDENTITY_AUTHORITY_HOST, MSAL_MANAGED_IDENTITY_ENDPOINT nor MSI_ENDPOINT): Python's
ManagedIdentityCredential / DefaultAzureCredential / SecretClient, and `az login --identity`,
whose IMDS URL is hard-coded.

Needs root (ip netns). run.sh's private mount namespace maps the vault names to 127.0.0.1, and
`ip netns exec` keeps that /etc/hosts, so in the namespace they reach its own loopback.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from compat import PY
from harness import BIN, SANITIZER_MARKS
from test_az import VAULT_RESOURCE, Az, AzChecks, create_uai, facts

IMDS = "169.254.169.254"
SERVER_PORT = 8443  # the namespace is empty: any port is free
IDENTITY_VARS = ("AZURE_POD_IDENTITY_AUTHORITY_HOST", "MSAL_MANAGED_IDENTITY_ENDPOINT", "MSI_ENDPOINT",
                 "MSI_SECRET", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IMDS_ENDPOINT", "AZURE_CLIENT_ID",
                 "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")


def ip(*args):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))


class NetnsUp:
    """A network namespace with 169.254.169.254 on its loopback, and `mivault up` inside it."""

    def __init__(self):
        self.ns = "mivault-compat-%d" % os.getpid()
        self.exec = ["ip", "netns", "exec", self.ns]
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="mivault-netns.")
        self.log = open(os.path.join(self.dir, "up.log"), "w+")
        ip("netns", "add", self.ns)
        try:
            ip("-n", self.ns, "link", "set", "lo", "up")
            ip("-n", self.ns, "addr", "add", IMDS + "/32", "dev", "lo")
            self.state = os.path.join(self.dir, "state")
            # `ip netns exec` execs: self.proc is `mivault up` itself
            self.proc = subprocess.Popen(self.exec + [BIN, "up", "--state", self.state, "--server-port",
                                                      str(SERVER_PORT), "--imds-address", IMDS],
                                         stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
            env_sh = os.path.join(self.state, "env.sh")
            end = time.time() + 60
            while not os.path.exists(env_sh):
                if self.proc.poll() is not None or time.time() > end:
                    self.log.seek(0)
                    raise RuntimeError("mivault up --imds-address failed: " + self.log.read())
                time.sleep(0.1)
            with open(env_sh) as f:
                self.env_sh = f.read()
            self.env = dict(os.environ)
            for k in IDENTITY_VARS:
                self.env.pop(k, None)
            for m in re.finditer(r"^export (\w+)='(.*)'$", self.env_sh, re.M):
                self.env[m.group(1)] = m.group(2)
        except BaseException:
            self.close()
            raise

    def cli(self, *args):
        import json
        r = subprocess.run(self.exec + [BIN] + list(args) + ["--state", self.state], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("mivault %s: %s" % (" ".join(args), r.stderr))
        return json.loads(r.stdout) if r.stdout.strip() else None

    def children(self):
        """(pid, argv) of the processes `up` started."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                if ppid != self.proc.pid:
                    continue
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    out.append((int(d), f.read().split(b"\0")))
            except (OSError, ValueError, IndexError):
                continue
        return out

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return text


@unittest.skipUnless(os.geteuid() == 0 and shutil.which("ip"), "needs root and iproute2 (ip netns)")
class ImdsAtLinkLocalTest(unittest.TestCase, AzChecks):
    @classmethod
    def setUpClass(cls):
        cls.up = NetnsUp()
        cls.az = None
        try:
            cls.f = facts(cls.up.cli)
            cls.uai = create_uai(cls.up.cli, "nsuai")
            cls.up.cli("vm", "identity", "assign", "--name", "localvm", "--user-assigned", cls.uai["id"])
            cls.up.cli("role", "assignment", "create", "--assignee", cls.uai["principal"], "--role",
                       "Key Vault Secrets User", "--scope", "vault:dev")
            cls.az = Az(cls.up.env, prefix=cls.up.exec)
            cls.az.register_cloud("https://127.0.0.1:%d" % SERVER_PORT, ".vault.localhost:%d" % SERVER_PORT)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.az:
            cls.az.close()
        text = cls.up.close()
        for m in SANITIZER_MARKS:
            if m in text:
                raise AssertionError("sanitizer report from mivault up --imds-address:\n" + text[-4000:])

    def in_ns(self, code):
        r = subprocess.run(self.up.exec + [PY, "-c", code], capture_output=True, text=True, env=self.up.env,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_env_sh_names_no_identity_endpoint(self):
        for k in IDENTITY_VARS:
            self.assertNotIn(k, self.up.env_sh)
        self.assertIn("export REQUESTS_CA_BUNDLE=", self.up.env_sh)
        self.assertIn("export MIVAULT_VAULT_URL='https://dev.vault.localhost:%d'" % SERVER_PORT, self.up.env_sh)

    def test_agent_binds_port_80_then_runs_as_nobody(self):
        agents = [pid for pid, argv in self.up.children() if b"agent" in argv]
        self.assertEqual(len(agents), 1, self.up.children())
        with open("/proc/%d/status" % agents[0]) as f:
            status = f.read()
        nobody = pwd.getpwnam("nobody")
        uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
        gids = re.search(r"^Gid:\s+(.*)$", status, re.M).group(1).split()
        groups = re.search(r"^Groups:[ \t]*(.*)$", status, re.M).group(1).split()
        self.assertEqual(uids, [str(nobody.pw_uid)] * 4)  # real, effective, saved, fs
        self.assertEqual(gids, [str(nobody.pw_gid)] * 4)
        self.assertEqual(groups, [])

    def test_python_managed_identity_without_any_variable(self):
        out = self.in_ns('''
import base64, json, os
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
claims = lambda t: json.loads(base64.urlsafe_b64decode(t.split(".")[1] + "=" * (-len(t.split(".")[1]) % 4)))
t = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
c = claims(t.token)
print(c["aud"], c["oid"])
t = ManagedIdentityCredential(client_id="UAI_CLIENT_ID").get_token("https://vault.azure.net/.default")
print(claims(t.token)["oid"])
dac = DefaultAzureCredential(exclude_shared_token_cache_credential=True)
print(claims(dac.get_token("https://vault.azure.net/.default").token)["oid"])
s = SecretClient(os.environ["MIVAULT_VAULT_URL"], ManagedIdentityCredential())
s.set_secret("at-169-254", "no-variables")
print(s.get_secret("at-169-254").value)
'''.replace("UAI_CLIENT_ID", self.uai["client"]))
        self.assertEqual(out.split("\n"), [VAULT_RESOURCE + " " + self.f["principal"], self.uai["principal"],
                                           self.f["principal"], "no-variables", ""])

    def test_az_login_identity_system_assigned(self):
        self.check_login(self.az.ok(self, "login", "--identity"), self.f, "systemAssignedIdentity", "MSI")
        out = self.az.ok(self, "account", "get-access-token", "--resource", VAULT_RESOURCE)
        self.check_access_token(out, self.f, self.f["principal"], mirid=self.f["vm_id"])

    def test_az_login_identity_user_assigned_by_object_id(self):
        """az tries the id as client_id, gets IMDS's `400 Bad Request`, and retries as object_id
        (reference §7.1 step 3)."""
        u = self.uai
        out = self.az.ok(self, "login", "--identity", "--username", u["principal"])
        self.check_login(out, self.f, "userAssignedIdentity", "MSIObject-" + u["principal"])
        out = self.az.ok(self, "account", "get-access-token", "--resource", VAULT_RESOURCE)
        self.check_access_token(out, self.f, u["principal"], appid=u["client"], mirid=u["id"])


if __name__ == "__main__":
    unittest.main()
