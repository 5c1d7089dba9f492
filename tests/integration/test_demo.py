"""`mivault demo` runs the six steps for real and the refused negative case."""
import subprocess

from harness import BIN, SANITIZER_MARKS
import unittest


class DemoTest(unittest.TestCase):
    def test_demo(self):
        r = subprocess.run([BIN, "demo"], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        out = r.stdout
        for s in ("step", "request / response", "status tracker", "Identity not found", "REFUSED", "s3cret",
                  "xms_mirid=", "oid="):
            self.assertIn(s, out)
        for m in SANITIZER_MARKS:
            self.assertNotIn(m, r.stderr)
