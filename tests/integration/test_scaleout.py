"""test_scaleout.py: issue 7, many servers behind a load balancer (docs/config.md).

The public URL (`init --public-url`) is what clients dial: the issuer, the vault URLs and the
challenge resource derive from it, with its port, whatever port each server listens on
(`server --listen`). `GET /healthz` tells a balancer whether a server can serve writes. A second
state dir joins the installation its store holds with a copy of master.key, and gets the same
tenant and CA. The load balancer here is a small TCP forwarder, round robin over the servers."""
import hashlib
import json
import os
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import unittest

from harness import BIN, PG_URL, Env, MivaultTest, free_port, jwt_parts, pg_sql, wait_port


class Balancer:
    """A TCP load balancer on 127.0.0.1:port: each connection goes to the next backend."""

    def __init__(self, port, backends):
        self.backends, self.n = backends, 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            b = self.backends[self.n % len(self.backends)]
            self.n += 1
            try:
                u = socket.create_connection(("127.0.0.1", b))
            except OSError:
                c.close()
                continue
            pair = {"left": 2, "lock": threading.Lock(), "socks": (c, u)}
            for a, z in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, z, pair), daemon=True).start()

    @staticmethod
    def _pipe(a, z, pair):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                z.sendall(d)
        except OSError:
            pass
        try:
            z.shutdown(socket.SHUT_WR)  # pass the end of this direction on
        except OSError:
            pass
        with pair["lock"]:
            pair["left"] -= 1
            last = pair["left"] == 0
        if last:
            for s in pair["socks"]:
                s.close()

    def close(self):
        self.closed = True
        self.sock.close()


def store_dump(env):
    """A digest of everything in env's store (SQLite file or PostgreSQL database)."""
    if env.store_url:
        rows = []
        for t in pg_sql(env.store_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                        " AND tablename <> 'change_log' ORDER BY 1").split():
            rows.append(pg_sql(env.store_url, "SELECT coalesce(string_agg(x::text, '|' ORDER BY x::text), '')"
                               " FROM %s x" % t))
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()
    c = sqlite3.connect(os.path.join(env.dir, "mivault.db"))
    h = hashlib.sha256("\n".join(c.iterdump()).encode()).hexdigest()
    c.close()
    return h


def peer_cert(ctx, port, sni):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            return t.getpeercert()


class PublicUrlTest(unittest.TestCase):
    """One server listening on LISTEN; clients are told about https://mv.test:PUB."""

    def setUp(self):
        self.pub = free_port()
        self.url = "https://mv.test:%d" % self.pub
        self.env = Env(self, init_args=("--public-url", self.url))
        self.addCleanup(self.env.close)
        self.listen = free_port()
        self.env.start_server(listen_port=self.listen)

    def test_config_persists_public_url(self):
        e = self.env
        self.assertEqual(e.init["publicUrl"], self.url)
        with open(os.path.join(e.dir, "config.json")) as f:
            self.assertEqual(json.load(f)["publicUrl"], self.url)

    def test_listen_overrides_config_port(self):
        e = self.env
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", e.server_port), timeout=1).close()
        r = e.https("GET", "/healthz", port=self.listen)
        self.assertEqual(r.status, 200, r.body)

    def test_issuer_is_the_public_url(self):
        e = self.env
        # SNI mv.test with hostname checking: the certificate names the public host.
        r = e.https("GET", "/%s/.well-known/openid-configuration" % e.tenant, host="mv.test", port=self.listen)
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        self.assertEqual(doc["issuer"], "%s/%s/" % (self.url, e.tenant))
        self.assertTrue(doc["token_endpoint"].startswith(self.url + "/"))
        self.assertTrue(doc["jwks_uri"].startswith(self.url + "/"))

    def test_challenge_resource_carries_the_public_port(self):
        e = self.env
        r = e.https("PUT", "/secrets/a?api-version=7.5", host="dev.vault.localhost", port=self.listen)
        self.assertEqual(r.status, 401, r.body)
        h = r.header("WWW-Authenticate")
        self.assertIn('resource="https://vault.localhost:%d"' % self.pub, h)
        self.assertIn('authorization="%s/%s"' % (self.url, e.tenant), h)

    def test_certificate_names(self):
        cert = peer_cert(self.env.ctx, self.listen, "mv.test")
        san = set(cert["subjectAltName"])
        for want in (("DNS", "mv.test"), ("DNS", "*.vault.localhost"), ("DNS", "vault.localhost"),
                     ("DNS", "localhost"), ("IP Address", "127.0.0.1")):
            self.assertIn(want, san)

    def test_healthz_any_host_no_detail(self):
        e = self.env
        for host in ("127.0.0.1", "mv.test", "dev.vault.localhost", "localhost"):
            r = e.https("GET", "/healthz", host=host, port=self.listen)
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json(), {"status": "ok"})
            self.assertEqual(r.header("Cache-Control"), "no-store")
        r = e.https("HEAD", "/healthz", port=self.listen)
        self.assertEqual(r.status, 200)
        r = e.https("POST", "/healthz", body="", port=self.listen)
        self.assertEqual(r.status, 405, r.body)
        # not audited
        with open(os.path.join(e.dir, "audit.log")) as f:
            self.assertNotIn("healthz", f.read())

    def test_healthz_503_while_the_store_cannot_write(self):
        e = self.env
        self.assertEqual(e.https("GET", "/healthz", port=self.listen).status, 200)
        time.sleep(1.1)  # past the cached answer
        if e.store_url:
            return self.healthz_503_while_postgresql_refuses(e)
        db = sqlite3.connect(os.path.join(e.dir, "mivault.db"), isolation_level=None, timeout=10)
        db.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            deadline = time.time() + 5
            status = None
            while time.time() < deadline:
                r = e.https("GET", "/healthz", port=self.listen)
                status = r.status
                if status == 503:
                    self.assertEqual(r.json(), {"status": "unavailable"})
                    break
                time.sleep(0.2)
            self.assertEqual(status, 503)
        finally:
            db.execute("ROLLBACK")
            db.close()
        time.sleep(1.1)  # every loop's cached 503 is older than 1 s now: each probes again
        for _ in range(4):
            self.assertEqual(e.https("GET", "/healthz", port=self.listen).status, 200)

    def test_healthz_200_after_the_connections_die_unseen(self):
        """Regression (a CI failure): the backends are terminated while nobody probes. A loop's
        next probe found its old connection dead, answered 503 and kept that for a second,
        although the database was fine; it must reconnect and answer 200."""
        e = self.env
        if not e.store_url:
            self.skipTest("PostgreSQL: the server's connections are cut under it")
        for _ in range(8):  # every loop probes once and keeps its connection
            self.assertEqual(e.https("GET", "/healthz", port=self.listen).status, 200)
        n = pg_sql(PG_URL, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'"
                   % e.pg_db)
        self.assertGreater(int(n), 0)
        time.sleep(1.1)  # past every loop's cached answer
        for i in range(12):
            r = e.https("GET", "/healthz", port=self.listen)
            self.assertEqual(r.status, 200, "probe %d: %s" % (i, r.body))

    def healthz_503_while_postgresql_refuses(self, e):
        """PostgreSQL: the database stops taking connections and the server's are cut."""
        pg_sql(PG_URL, "ALTER DATABASE %s ALLOW_CONNECTIONS false" % e.pg_db)
        try:
            pg_sql(PG_URL, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'"
                   % e.pg_db)
            deadline = time.time() + 10
            status = None
            while time.time() < deadline:
                r = e.https("GET", "/healthz", port=self.listen)
                status = r.status
                if status == 503:
                    self.assertEqual(r.json(), {"status": "unavailable"})
                    break
                time.sleep(0.2)
            self.assertEqual(status, 503)
        finally:
            pg_sql(PG_URL, "ALTER DATABASE %s ALLOW_CONNECTIONS true" % e.pg_db)
        deadline = time.time() + 10
        while time.time() < deadline and e.https("GET", "/healthz", port=self.listen).status != 200:
            time.sleep(0.2)
        time.sleep(1.1)
        for _ in range(4):
            self.assertEqual(e.https("GET", "/healthz", port=self.listen).status, 200)

    def test_bad_flags_exit_2(self):
        e = self.env
        for url in ("http://mv.test", "https://", "https://mv.test:0", "https://mv.test:99999",
                    "https://mv.test/x", "https://u@mv.test", "https://::1:8443", "https://mv_test"):
            r = subprocess.run([BIN, "init", "--public-url", url, "--state", e.dir + "-x"], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 2, url)
            self.assertIn("--public-url", r.stderr)
        self.assertFalse(os.path.exists(e.dir + "-x"))
        for listen in ("8443", "127.0.0.1", "127.0.0.1:x", "::1:8443", "[::1]", "127.0.0.1:70000"):
            r = e.run("server", "--listen", listen, check=False)
            self.assertEqual(r.returncode, 2, listen)
            self.assertIn("--listen", r.stderr)

    def test_listen_ipv6(self):
        e = self.env
        try:
            socket.create_connection(("::1", 1), timeout=0.2)
        except ConnectionRefusedError:
            pass
        except OSError:
            self.skipTest("no IPv6 loopback")
        port = free_port()
        p = e.spawn("server6", "server", "--listen", "[::1]:%d" % port)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                s = socket.create_connection(("::1", port), timeout=0.2)
                break
            except OSError:
                self.assertIsNone(p.poll())
                time.sleep(0.05)
        with e.ctx.wrap_socket(s, server_hostname="mv.test") as t:
            t.sendall(b"GET /healthz HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = t.recv(4096)
                if not d:
                    break
                data += d
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])


class JoinTest(unittest.TestCase):
    """DIR2 joins the installation in DIR1's store (a SQLite file; PostgreSQL is the real path)."""

    def setUp(self):
        self.pub = free_port()
        self.url = "https://mv.localhost:%d" % self.pub
        self.e1 = Env(self, init_args=("--public-url", self.url))
        self.addCleanup(self.e1.close)
        # the store DIR2 joins: DIR1's database, or its SQLite file (not a real deployment, but
        # the same join logic)
        self.store_args = (["--store", self.e1.store_url] if self.e1.store_url
                           else ["--sqlite-file", os.path.join(self.e1.dir, "mivault.db")])
        self.dir2 = self.e1.dir + "-2"
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.dir2]))

    def join(self, *extra):
        return subprocess.run([BIN, "init", "--state", self.dir2] + self.store_args + ["--public-url", self.url,
                               "--server-port", str(free_port()), "--agent-port", str(free_port()), "--threads", "2"]
                              + list(extra), capture_output=True, text=True, timeout=60)

    def test_join_refused_without_or_with_a_wrong_master_key(self):
        before = store_dump(self.e1)
        r = self.join()
        self.assertEqual(r.returncode, 1)
        self.assertIn("already holds tenant %s" % self.e1.tenant, r.stderr)
        self.assertIn("--master-key", r.stderr)
        wrong = os.path.join(self.e1.dir, "wrong.key")
        with open(wrong, "wb") as f:
            f.write(os.urandom(32))
        r = self.join("--master-key", wrong)
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not unwrap", r.stderr)
        short = os.path.join(self.e1.dir, "short.key")
        with open(short, "wb") as f:
            f.write(b"x" * 10)
        r = self.join("--master-key", short)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a master.key", r.stderr)
        self.assertEqual(store_dump(self.e1), before)
        for f in ("master.key", "config.json", "ca.pem", "ca.key", "admin.key", "server.pem"):
            self.assertFalse(os.path.exists(os.path.join(self.dir2, f)), f)

    def test_join_gives_the_same_tenant_and_ca(self):
        r = self.join("--master-key", os.path.join(self.e1.dir, "master.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertTrue(out["joined"])
        self.assertFalse(out["created"])
        self.assertEqual(out["tenantId"], self.e1.tenant)
        self.assertEqual(out["subscriptionId"], self.e1.sub)
        self.assertEqual(out["publicUrl"], self.url)
        for f in ("ca.pem", "ca.key", "master.key", "admin.key"):
            with open(os.path.join(self.e1.dir, f), "rb") as a, open(os.path.join(self.dir2, f), "rb") as b:
                self.assertEqual(a.read(), b.read(), f)
        with open(os.path.join(self.e1.dir, "server.pem"), "rb") as a, \
                open(os.path.join(self.dir2, "server.pem"), "rb") as b:
            self.assertNotEqual(a.read(), b.read())  # its own certificate, same CA
        self.assertEqual(os.stat(os.path.join(self.dir2, "ca.key")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(self.dir2, "master.key")).st_mode & 0o777, 0o600)
        # Running init again on either dir changes nothing and is not a join; an init-only flag
        # that differs from the state is refused, naming it (docs/operations.md).
        r = subprocess.run([BIN, "init", "--state", self.dir2], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(json.loads(r.stdout)["joined"])
        r = self.join()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--server-port cannot change on the existing state", r.stderr)

    def test_two_servers_behind_a_balancer(self):
        """The whole flow through the balancer, alternating between the two servers."""
        e1 = self.e1
        r = self.join("--master-key", os.path.join(e1.dir, "master.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        l1, l2 = free_port(), free_port()
        e1.start_server(listen_port=l1)
        log = open(os.path.join(e1.dir, "server2.log"), "w+")
        e1.logs.append(log)
        s2 = subprocess.Popen([BIN, "server", "--listen", "127.0.0.1:%d" % l2, "--state", self.dir2],
                              stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        e1.procs.append(s2)
        wait_port(l2, s2)
        lb = Balancer(self.pub, [l1, l2])
        self.addCleanup(lb.close)
        # Both servers present certificates of the one CA (DIR1's ca.pem) for the public host.
        for port in (l1, l2):
            san = set(peer_cert(e1.ctx, port, "mv.localhost")["subjectAltName"])
            self.assertIn(("DNS", "mv.localhost"), san)
        # Control plane through the balancer (the CLI dials the public URL), from both dirs.
        e1.vault("dev")
        vm = e1.vm("vm1")
        out = subprocess.run([BIN, "keyvault", "show", "--name", "dev", "--state", self.dir2], capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        e1.grant(vm["identity"]["principalId"], "Key Vault Secrets Officer", "vault:dev")
        _, aport = e1.start_agent("vm1", join=vm["joinToken"])
        tok = e1.token(aport, "https://vault.localhost:%d" % self.pub)
        _, claims, _ = jwt_parts(tok)
        self.assertEqual(claims["iss"], "%s/%s/" % (self.url, e1.tenant))
        # The vault on both servers: the challenge names the public port; a secret written
        # through one server is read through the other.
        for port in (l1, l2):
            r = e1.https("GET", "/secrets/x?api-version=7.5", host="dev.vault.localhost", port=port)
            self.assertIn('resource="https://vault.localhost:%d"' % self.pub, r.header("WWW-Authenticate"))
        r = e1.https("PUT", "/secrets/s?api-version=7.5", host="dev.vault.localhost", port=l1, token=tok,
                     body={"value": "v1"})
        self.assertEqual(r.status, 200, r.body)
        r = e1.https("GET", "/secrets/s?api-version=7.5", host="dev.vault.localhost", port=l2, token=tok)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["value"], "v1")
        # A workload verb: vault URL https://dev.vault.localhost:PUB, through the balancer.
        env = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:%d" % aport)
        for _ in range(2):
            r = subprocess.run([BIN, "keyvault", "secret", "show", "--vault-name", "dev", "--name", "s", "--state",
                                e1.dir], capture_output=True, text=True, timeout=60, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('"v1"', r.stdout)
        for port in (l1, l2):
            self.assertEqual(e1.https("GET", "/healthz", port=port).status, 200)


class ClientErrorsTest(MivaultTest):
    """The CLI says what failed when it cannot talk to the server (http/client.c)."""

    def set_public_url(self, url):
        path = os.path.join(self.env.dir, "config.json")
        with open(path) as f:
            c = json.load(f)
        c["publicUrl"] = url
        with open(path, "w") as f:
            json.dump(c, f)

    def test_name_mismatch(self):
        e = self.env
        # curl resolves *.localhost to the loopback itself; the certificate does not name it.
        self.set_public_url("https://mv2.localhost:%d" % e.server_port)
        r = e.run("vm", "list", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("TLS: the server's certificate does not name mv2.localhost", r.stderr)

    def test_unknown_ca(self):
        e = self.env
        other = Env(self)  # another installation: another CA
        self.addCleanup(other.close)
        with open(os.path.join(other.dir, "ca.pem"), "rb") as src, open(os.path.join(e.dir, "ca.pem"), "wb") as dst:
            dst.write(src.read())
        r = e.run("vm", "list", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("TLS: certificate not signed by a trusted CA (CA bundle: %s)" % os.path.join(e.dir, "ca.pem"),
                      r.stderr)

    def test_connection_refused(self):
        e = self.env
        e.stop(e.server)
        r = e.run("vm", "list", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach the server at https://127.0.0.1:%d: connection refused" % e.server_port,
                      r.stderr)

    def test_workload_names_the_vault_and_the_tls_failure(self):
        e = self.env
        e.vault("dev")
        vm = e.vm("vm1")
        _, aport = e.start_agent("vm1", join=vm["joinToken"])
        env = dict(os.environ, AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:%d" % aport)
        # the vault name is not in the certificate of a server whose suffix was changed after init
        path = os.path.join(e.dir, "config.json")
        with open(path) as f:
            c = json.load(f)
        c["vaultSuffix"] = "kv.localhost"
        with open(path, "w") as f:
            json.dump(c, f)
        r = subprocess.run([BIN, "keyvault", "secret", "show", "--vault-name", "dev", "--name", "s", "--state", e.dir],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach the vault at https://dev.kv.localhost:%d" % e.server_port, r.stderr)
        self.assertIn("TLS: the server's certificate does not name dev.kv.localhost", r.stderr)


if __name__ == "__main__":
    unittest.main()
