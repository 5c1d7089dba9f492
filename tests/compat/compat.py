"""compat.py: run `mivault up` in a temporary state dir and unchanged client programs against it.

The programs get exactly the environment a user gets: this process's environment plus what
`env.sh` exports (parsed from the file `up` wrote), nothing else.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import BIN, SANITIZER_MARKS, free_port, wait_port  # noqa: E402

PY = "/usr/bin/python3"


class Up:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="mivault-compat.")
        self.server_port = free_port()
        self.agent_port = free_port()
        self.log = open(os.path.join(self.dir, "up.log"), "w+")
        self.proc = subprocess.Popen([BIN, "up", "--state", self.dir, "--server-port", str(self.server_port),
                                      "--agent-port", str(self.agent_port)] + list(extra),
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        env_sh = os.path.join(self.dir, "env.sh")
        end = time.time() + 60
        while not os.path.exists(env_sh):
            if self.proc.poll() is not None or time.time() > end:
                self.log.seek(0)
                raise RuntimeError("mivault up failed: " + self.log.read())
            time.sleep(0.1)
        self.env = dict(os.environ)
        with open(env_sh) as f:
            for line in f:
                m = re.match(r"export (\w+)='(.*)'$", line.strip())
                if m:
                    self.env[m.group(1)] = m.group(2)
        # clients must not find credentials of the developer's machine
        for k in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "IDENTITY_ENDPOINT",
                  "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE"):
            self.env.pop(k, None)

    def cli(self, *args, env=None):
        r = subprocess.run([BIN] + list(args) + ["--state", self.dir], capture_output=True, text=True, timeout=60,
                           env=env)
        if r.returncode != 0:
            raise RuntimeError("mivault %s: %s" % (" ".join(args), r.stderr))
        import json
        return json.loads(r.stdout) if r.stdout.strip() else None

    def cli_text(self, *args, env=None):
        """A verb whose stdout is not JSON (e.g. `token mint`), stripped."""
        r = subprocess.run([BIN] + list(args) + ["--state", self.dir], capture_output=True, text=True, timeout=60,
                           env=env)
        if r.returncode != 0:
            raise RuntimeError("mivault %s: %s" % (" ".join(args), r.stderr))
        return r.stdout.strip()

    def audit(self):
        """The server's audit log so far, one dict per line (time, plane, action, status, ...)."""
        import json
        path = os.path.join(self.dir, "audit.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def vault_url(self, name):
        """The URL of vault `name` on this server, built like env.sh's MIVAULT_VAULT_URL."""
        scheme, rest = self.env["MIVAULT_VAULT_URL"].split("://", 1)
        return "%s://%s%s" % (scheme, name, rest[rest.index("."):])

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return text


# Prelude of the Python client programs run by CompatTest.py_json: imports, and helpers that only
# observe (a response hook is a documented azure-core option; nothing in the clients is replaced).
# The program fills `out`; its JSON is printed at the end.
PY_PRELUDE = r"""
import base64, datetime, json, os, sys, threading, time
from azure.core.credentials import AccessToken
from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceExistsError,
                                   ResourceNotFoundError)
from azure.identity import CredentialUnavailableError, DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

VAULT = os.environ["MIVAULT_VAULT_URL"]
out = {}
wire = []  # every HTTP exchange a client made: method, url, status, Retry-After, a few request headers


def vault_url(name):
    scheme, rest = VAULT.split("://", 1)
    return "%s://%s%s" % (scheme, name, rest[rest.index("."):])


def hook(resp):
    req, res = resp.http_request, resp.http_response
    wire.append({"method": req.method, "url": req.url, "status": res.status_code,
                 "retry_after": res.headers.get("Retry-After"), "metadata": req.headers.get("Metadata"),
                 "identity_header": "X-IDENTITY-HEADER" in req.headers,
                 "authorization": "Authorization" in req.headers, "t": time.time()})


def err(e):
    d = {"type": type(e).__name__, "status": getattr(e, "status_code", None), "message": str(e)}
    odata = getattr(e, "error", None)
    if odata is not None:
        d["code"] = odata.code
        inner = getattr(odata, "innererror", None) or {}
        d["inner"] = inner.get("code") if isinstance(inner, dict) else None
    return d


def capture(f):
    try:
        return {"ok": f()}
    except Exception as e:  # the point: report what the SDK raised
        return {"error": err(e)}


def claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
"""


class CompatTest(unittest.TestCase):
    up = None
    up_args = ()  # extra `mivault up` arguments of a class, e.g. ("--throttle-ops", "5")

    @classmethod
    def setUpClass(cls):
        cls.up = Up(*cls.up_args)
        try:
            cls.prepare()
        except BaseException:
            cls.up.close()  # tearDownClass does not run when setUpClass fails
            raise

    @classmethod
    def prepare(cls):
        """What a class creates once on its `mivault up` (identities, vaults, roles)."""

    @classmethod
    def tearDownClass(cls):
        text = cls.up.close()
        for m in SANITIZER_MARKS:
            if m in text:
                raise AssertionError("sanitizer report from mivault up:\n" + text[-4000:])

    def py_json(self, code, env=None, timeout=120):
        """Runs PY_PRELUDE + code with Debian's Python; returns the `out` dict the program filled."""
        import json
        r = self.run_py(PY_PRELUDE + code + "\nprint(json.dumps(out, default=str))\n", env=env, timeout=timeout)
        self.assertEqual(r.returncode, 0, r.stderr[-4000:])
        return json.loads(r.stdout.strip().splitlines()[-1])

    def run_py(self, code, env=None, timeout=120):
        r = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env or self.up.env, timeout=timeout)
        return r
