"""test_install.py: `make install` into a temp DESTDIR, the example built against it with
pkg-config (shared and static) and run against a real `mivault up` started from the installed
binary, the library's exports, the systemd units (`systemd-analyze verify` and `security`), and
`make deb` (docs/operations.md, "Install").

Builds with make in the worktree (MIVAULT_MODE: release or asan, as the tests run)."""
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from harness import SANITIZER_MARKS, free_port

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# The release build is what gets installed and packaged, also when the suite runs under ASan (an
# ASan libmivault.so could not be loaded by an uninstrumented program).
MODE = "release"


# Nothing here depends on the store: run once, not again in the PostgreSQL pass.
SKIP_PG = unittest.skipIf(os.environ.get("MIVAULT_TEST_STORE") == "postgresql", "store-independent")


def sh(*args, env=None, cwd=ROOT, check=True, timeout=600):
    r = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(args), r.returncode, r.stdout[-3000:],
                                                         r.stderr[-3000:]))
    return r


def version():
    with open(os.path.join(ROOT, "VERSION")) as f:
        return f.read().strip()


def header_functions():
    """The functions include/mivault/mivault.h declares."""
    with open(os.path.join(ROOT, "include", "mivault", "mivault.h")) as f:
        text = f.read()
    return sorted(set(re.findall(r"^(?:const char \*|void |int )(mv_\w+)\(", text, re.M)))


@SKIP_PG
class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mivault-install.")
        cls.dest = os.path.join(cls.tmp, "dest")
        sh("make", "-s", "-j2", "install", "MODE=" + MODE, "PREFIX=/usr/local", "DESTDIR=" + cls.dest)
        cls.prefix = os.path.join(cls.dest, "usr", "local")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_layout(self):
        v = version()
        p = self.prefix
        for rel in ("bin/mivault", "lib/libmivault.so.%s" % v, "lib/libmivault.a", "include/mivault/mivault.h",
                    "lib/pkgconfig/mivault.pc", "lib/systemd/system/mivault-server.service",
                    "lib/systemd/system/mivault-agent@.service", "share/man/man1/mivault.1"):
            self.assertTrue(os.path.isfile(os.path.join(p, rel)), rel)
        self.assertEqual(os.readlink(os.path.join(p, "lib", "libmivault.so")), "libmivault.so.1")
        self.assertEqual(os.readlink(os.path.join(p, "lib", "libmivault.so.1")), "libmivault.so.%s" % v)
        dyn = sh("readelf", "-d", os.path.join(p, "lib", "libmivault.so")).stdout
        self.assertIn("Library soname: [libmivault.so.1]", dyn)
        r = sh(os.path.join(p, "bin", "mivault"), "--version")
        self.assertEqual(r.stdout.strip(), "mivault " + v)
        man = sh("man", "-l", "-P", "cat", os.path.join(p, "share", "man", "man1", "mivault.1"),
                 env=dict(os.environ, MANWIDTH="80")).stdout
        self.assertIn("--metrics-listen", man.replace("\u2010", "-"))

    def test_library_exports_only_the_public_api(self):
        out = sh("nm", "-D", "--defined-only", os.path.join(self.prefix, "lib", "libmivault.so")).stdout
        syms = sorted(set(line.split()[-1].split("@")[0] for line in out.splitlines()
                          if line.split()[1] in ("T", "D", "B", "R", "W")))
        self.assertEqual(syms, header_functions())
        self.assertGreaterEqual(len(syms), 16)

    def test_pkg_config(self):
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.prefix, "lib", "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.dest)
        self.assertEqual(sh("pkg-config", "--modversion", "mivault", env=env).stdout.strip(), version())
        flags = sh("pkg-config", "--cflags", "--libs", "mivault", env=env).stdout
        self.assertIn("-I%s/include" % self.prefix, flags)
        self.assertIn("-lmivault", flags)
        static = sh("pkg-config", "--libs", "--static", "mivault", env=env).stdout
        for lib in ("-lcurl", "-ljansson", "-lcrypto", "-lpthread"):
            self.assertIn(lib, static)

    def test_example_reads_a_secret_through_imds(self):
        """examples/read_secret.c built against the install (shared and static), run with the
        environment of a real `mivault up` started from the installed binary."""
        build = os.path.join(self.tmp, "ex")
        shutil.copytree(os.path.join(ROOT, "examples"), build)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(self.prefix, "lib", "pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.dest)
        sh("make", "-s", "read_secret", "static", cwd=build, env=env)
        with open(os.path.join(build, "read_secret.c")) as f:
            includes = re.findall(r"#include\s+(\S+)", f.read())
        self.assertIn("<mivault/mivault.h>", includes)
        self.assertEqual([i for i in includes if "mivault" in i or '"' in i], ["<mivault/mivault.h>"])
        lib = os.path.join(self.prefix, "lib")
        ldd = sh("ldd", os.path.join(build, "read_secret"), env=dict(env, LD_LIBRARY_PATH=lib)).stdout
        self.assertIn(os.path.join(lib, "libmivault.so.1"), ldd)
        ldd = sh("ldd", os.path.join(build, "read_secret-static")).stdout
        self.assertNotIn("libmivault", ldd)

        state = os.path.join(self.tmp, "state")
        sp, ap = free_port(), free_port()
        binary = os.path.join(self.prefix, "bin", "mivault")
        log = open(os.path.join(self.tmp, "up.log"), "w+")
        up = subprocess.Popen([binary, "up", "--state", state, "--server-port", str(sp), "--agent-port", str(ap)],
                              stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            env_sh = os.path.join(state, "env.sh")
            end = time.time() + 60
            while not os.path.exists(env_sh):
                self.assertIsNone(up.poll(), "mivault up exited")
                self.assertLess(time.time(), end, "mivault up did not start")
                time.sleep(0.1)
            wl = dict(os.environ)
            with open(env_sh) as f:
                for line in f:
                    m = re.match(r"export (\w+)='(.*)'$", line.strip())
                    if m:
                        wl[m.group(1)] = m.group(2)
            sh(binary, "keyvault", "secret", "set", "--vault-name", "dev", "--name", "db-password",
               "--value", "s3cret-from-imds", "--state", state, env=wl)
            for prog, extra in (("read_secret", {"LD_LIBRARY_PATH": lib}), ("read_secret-static", {})):
                r = sh(os.path.join(build, prog), wl["MIVAULT_VAULT_URL"], "db-password", wl["SSL_CERT_FILE"],
                       env=dict(wl, **extra))
                self.assertEqual(r.stdout, "s3cret-from-imds\n", prog)
            r = sh(os.path.join(build, "read_secret"), wl["MIVAULT_VAULT_URL"], "missing", wl["SSL_CERT_FILE"],
                   env=dict(wl, LD_LIBRARY_PATH=lib), check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("not_found", r.stderr)
        finally:
            up.terminate()
            up.wait(20)
            log.seek(0)
            text = log.read()
            log.close()
        self.assertEqual(up.returncode, 0, text)
        self.assertFalse(any(m in text for m in SANITIZER_MARKS), text)


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
@SKIP_PG
class UnitsTest(unittest.TestCase):
    """The units of an install under a temp PREFIX (so their ExecStart exists): verify, hardening."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mivault-units.")
        os.chmod(cls.tmp, 0o755)  # the binary is run by an unprivileged user too
        sh("make", "-s", "-j2", "install", "MODE=" + MODE, "PREFIX=" + cls.tmp)
        cls.units = os.path.join(cls.tmp, "lib", "systemd", "system")
        os.symlink("mivault-agent@.service", os.path.join(cls.units, "mivault-agent@web1.service"))
        cls.env = dict(os.environ, MANPATH=os.path.join(cls.tmp, "share", "man"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def unit(self, name):
        with open(os.path.join(self.units, name)) as f:
            return f.read()

    def test_verify(self):
        for name in ("mivault-server.service", "mivault-agent@web1.service"):
            r = sh("systemd-analyze", "verify", os.path.join(self.units, name), env=self.env, check=False)
            self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""), name)

    def test_hardening(self):
        for name in ("mivault-server.service", "mivault-agent@.service"):
            u = self.unit(name)
            for line in ("User=mivault", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                         "ProtectHome=yes", "StateDirectory=mivault", "ExecStart=%s/bin/mivault" % self.tmp):
                self.assertIn(line, u, name)
        self.assertIn("\nCapabilityBoundingSet=\n", self.unit("mivault-server.service"))
        agent = self.unit("mivault-agent@.service")
        self.assertIn("\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n", agent)
        self.assertIn("\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n", agent)
        self.assertIn("--vm %i ", agent)
        self.assertIn("--imds-address 169.254.169.254", agent)
        # systemd's own exposure score (0 = locked down, 10 = none): both well under "MEDIUM" (5).
        for name in ("mivault-server.service", "mivault-agent@web1.service"):
            r = sh("systemd-analyze", "security", "--offline=true", os.path.join(self.units, name), env=self.env,
                   check=False)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            self.assertIsNotNone(m, r.stdout[-2000:] + r.stderr)
            self.assertLess(float(m.group(1)), 3.0, name)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("ip") and shutil.which("setpriv") and shutil.which("curl"),
                         "needs root, ip, setpriv and curl")
    def test_agent_serves_imds_port_80_with_only_cap_net_bind_service(self):
        """What mivault-agent@.service does, without systemd: the installed binary as an
        unprivileged user (User=), with CAP_NET_BIND_SERVICE as its only capability (bounding set
        and ambient) and no_new_privs, serving 169.254.169.254:80 in a network namespace of its
        own, next to a server there."""
        binary = os.path.join(self.tmp, "bin", "mivault")
        ns = "mivault-ops-%d" % os.getpid()
        nsx = ["ip", "netns", "exec", ns]
        work = tempfile.mkdtemp(prefix="mivault-agent-unit.")
        os.chmod(work, 0o711)  # the server drops to the state dir's user: it must reach its dir
        procs = []
        sh("ip", "netns", "add", ns)
        try:
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "addr", "add", "169.254.169.254/32", "dev", "lo")
            server_state, agent_state = os.path.join(work, "server"), os.path.join(work, "agent")
            sh(*(nsx + [binary, "init", "--state", server_state, "--server-port", "8443"]))
            log = open(os.path.join(work, "server.log"), "w+")
            procs.append((subprocess.Popen(nsx + [binary, "server", "--state", server_state], stdout=log,
                                           stderr=log, stdin=subprocess.DEVNULL), log))
            vm = None
            end = time.time() + 30
            while vm is None:
                r = sh(*(nsx + [binary, "vm", "create", "--name", "web1", "--assign-identity", "--state",
                                server_state]), check=False)
                if r.returncode == 0:
                    vm = json.loads(r.stdout)
                else:
                    self.assertLess(time.time(), end, r.stderr)
                    time.sleep(0.3)
            os.mkdir(agent_state, 0o700)
            nobody = pwd.getpwnam("nobody")
            os.chown(agent_state, nobody.pw_uid, nobody.pw_gid)
            log = open(os.path.join(work, "agent.log"), "w+")
            agent = subprocess.Popen(
                nsx + ["setpriv", "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nobody.pw_gid, "--clear-groups",
                       "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
                       "--bounding-set=-all,+net_bind_service", "--no-new-privs",
                       binary, "agent", "--vm", "web1", "--state", agent_state, "--imds-address", "169.254.169.254",
                       "--server", "https://127.0.0.1:8443", "--join", vm["joinToken"]],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            procs.append((agent, log))
            url = "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" \
                  "https%3A%2F%2Fvault.azure.net"
            end = time.time() + 30
            while True:
                self.assertIsNone(agent.poll(), "the agent exited")
                r = sh(*(nsx + ["curl", "-s", "-H", "Metadata: true", url]), check=False)
                if r.returncode == 0 and "access_token" in r.stdout:
                    break
                self.assertLess(time.time(), end, r.stdout + r.stderr)
                time.sleep(0.3)
            with open("/proc/%d/status" % agent.pid) as f:
                st = dict(line.split(":", 1) for line in f.read().splitlines())
            self.assertEqual(st["Uid"].split()[0], str(nobody.pw_uid))
            self.assertEqual(st["CapEff"].strip(), "0000000000000400")  # CAP_NET_BIND_SERVICE (10) only
            self.assertEqual(st["CapBnd"].strip(), "0000000000000400")
            self.assertEqual(st["NoNewPrivs"].strip(), "1")
        finally:
            for p, log in procs:
                if p.poll() is None:
                    p.terminate()
                    try:
                        p.wait(15)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
                log.seek(0)
                text = log.read()
                log.close()
                self.assertFalse(any(m in text for m in SANITIZER_MARKS), text)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            shutil.rmtree(work, ignore_errors=True)


@unittest.skipUnless(shutil.which("dpkg-deb") and shutil.which("dpkg-shlibdeps") and shutil.which("fakeroot"),
                     "dpkg-dev and fakeroot are needed")
@SKIP_PG
class DebTest(unittest.TestCase):
    def test_deb(self):
        sh("make", "-s", "deb", "MODE=" + MODE)
        arch = sh("dpkg", "--print-architecture").stdout.strip()
        deb = os.path.join(ROOT, "build", "mivault_%s_%s.deb" % (version(), arch))
        info = sh("dpkg-deb", "-I", deb).stdout
        fields = dict(re.findall(r"^ (\w[\w-]*): (.*)$", info, re.M))
        self.assertEqual(fields["Package"], "mivault")
        self.assertEqual(fields["Version"], version())
        for dep in ("libc6", "libcurl4", "libjansson4", "libssl3", "libevent", "libsqlite3-0", "libpq5", "adduser"):
            self.assertIn(dep, fields["Depends"])
        self.assertRegex(info, r"\btriggers\b")  # ldconfig, for the shared library
        contents = sh("dpkg-deb", "-c", deb).stdout
        for path in ("./usr/bin/mivault", "./usr/lib/libmivault.so.%s" % version(), "./usr/lib/libmivault.so.1",
                     "./usr/lib/libmivault.a", "./usr/include/mivault/mivault.h", "./usr/lib/pkgconfig/mivault.pc",
                     "./lib/systemd/system/mivault-server.service", "./lib/systemd/system/mivault-agent@.service",
                     "./usr/share/man/man1/mivault.1.gz", "./usr/share/doc/mivault/copyright",
                     "./usr/share/doc/mivault/changelog.gz"):
            self.assertIn(path, contents)
        tmp = tempfile.mkdtemp(prefix="mivault-deb.")
        try:
            sh("dpkg-deb", "-R", deb, tmp)
            with open(os.path.join(tmp, "DEBIAN", "postinst")) as f:
                postinst = f.read()
            self.assertIn("adduser --system", postinst)
            self.assertIn("mivault", postinst)
            for script in ("postinst", "postrm"):
                sh("sh", "-n", os.path.join(tmp, "DEBIAN", script))
            # the packaged binary runs with the system's libraries (what Depends names)
            for elf in ("usr/bin/mivault", "usr/lib/libmivault.so.%s" % version()):
                self.assertNotIn("not found", sh("ldd", os.path.join(tmp, elf)).stdout, elf)
            r = sh(os.path.join(tmp, "usr", "bin", "mivault"), "--version")
            self.assertEqual(r.stdout.strip(), "mivault " + version())
            with open(os.path.join(tmp, "lib", "systemd", "system", "mivault-server.service")) as f:
                self.assertIn("ExecStart=/usr/bin/mivault server", f.read())
            sh("dpkg-deb", "-I", deb, "md5sums")
            r = sh("sh", "-c", "cd %s && md5sum -c --quiet DEBIAN/md5sums" % tmp)
            # lintian, where installed: no errors
            if shutil.which("lintian"):
                r = sh("lintian", "--tag-display-limit", "0", deb, check=False)
                self.assertNotIn("\nE: ", "\n" + r.stdout, r.stdout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("unshare"), "needs root (a private mount namespace)")
    def test_maintainer_scripts_create_and_remove_the_user(self):
        """postinst/postrm run for real, in a private mount namespace over copies of /etc and
        /var/lib: the host's users and files are untouched."""
        sh("make", "-s", "deb", "MODE=" + MODE)
        arch = sh("dpkg", "--print-architecture").stdout.strip()
        deb = os.path.join(ROOT, "build", "mivault_%s_%s.deb" % (version(), arch))
        tmp = tempfile.mkdtemp(prefix="mivault-deb-ns.")
        try:
            sh("dpkg-deb", "-R", deb, os.path.join(tmp, "pkg"))
            script = os.path.join(tmp, "run.sh")
            with open(script, "w") as f:
                f.write("""set -e
mount --make-rprivate /
cp -a /etc {t}/etc
mount --bind {t}/etc /etc
mkdir -p {t}/varlib
mount --bind {t}/varlib /var/lib
for f in passwd group shadow gshadow; do [ -f /etc/$f ] && sed -i '/^mivault:/d' /etc/$f; done
! getent passwd mivault
sh {t}/pkg/DEBIAN/postinst configure
getent passwd mivault
getent group mivault >/dev/null
stat -c 'dir %U %G %a' /var/lib/mivault
sh {t}/pkg/DEBIAN/postinst configure
sh {t}/pkg/DEBIAN/postrm purge
! getent passwd mivault
[ ! -e /var/lib/mivault ]
echo purged
""".format(t=tmp))
            out = sh("unshare", "-m", "sh", script).stdout
            user = out.splitlines()[0].split(":")
            self.assertEqual(user[0], "mivault")
            self.assertLess(int(user[2]), 1000)  # a system user
            self.assertEqual(user[6], "/usr/sbin/nologin")
            self.assertIn("dir mivault mivault 711", out)
            self.assertIn("purged", out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
