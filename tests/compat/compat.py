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

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)
        self.log.seek(0)
        text = self.log.read()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return text


class CompatTest(unittest.TestCase):
    up = None

    @classmethod
    def setUpClass(cls):
        cls.up = Up()

    @classmethod
    def tearDownClass(cls):
        text = cls.up.close()
        for m in SANITIZER_MARKS:
            if m in text:
                raise AssertionError("sanitizer report from mivault up:\n" + text[-4000:])

    def run_py(self, code, env=None, timeout=120):
        r = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env or self.up.env, timeout=timeout)
        return r
