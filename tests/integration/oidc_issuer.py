"""oidc_issuer.py: a small OpenID Connect issuer for the federation tests, over HTTPS with its
own CA (the tests hand its certificate to `mivault server --trust-ca`).

It serves {issuer}/.well-known/openid-configuration and the JWKS its discovery names, and mints
tokens shaped like a Kubernetes projected service-account token (sub
system:serviceaccount:NS:SA, a kubernetes.io claim) or a GitHub Actions OIDC token (sub
repo:ORG/REPO:ref:…, or the immutable repo:OWNER@ID/REPO@ID:… form). Keys: RSA by default,
several at once (rotation: a key may be minted with before the JWKS publishes it), and an ES256
key to show that RSA is required. Every request is counted, so tests can see the cache."""
import base64
import datetime
import http.server
import json
import os
import ssl
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _int_b64(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def _cert(subject, issuer_name, pub, sign_key, ca=False, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1))
         .not_valid_after(now + datetime.timedelta(days=7)))
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        import ipaddress
        names = [x509.DNSName("localhost")] + [x509.IPAddress(ipaddress.ip_address(s)) for s in sans]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(sign_key, hashes.SHA256())


class Issuer:
    def __init__(self, directory, path=""):
        self.dir = directory
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test OIDC issuer CA")])
        ca = _cert(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
        tls_key = ec.generate_private_key(ec.SECP256R1())
        tls = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), ca_name,
                    tls_key.public_key(), ca_key, sans=("127.0.0.1",))
        self.ca_file = os.path.join(directory, "issuer-ca.pem")
        with open(self.ca_file, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        chain = os.path.join(directory, "issuer-tls.pem")
        with open(chain, "wb") as f:
            f.write(tls_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
            f.write(tls.public_bytes(serialization.Encoding.PEM))
        self.keys = {}          # kid -> private key
        self.published = set()  # kids in the JWKS
        self.hits = {"discovery": 0, "jwks": 0}
        self.fail = False       # answer 500 to everything
        self.add_key("k1")
        issuer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if issuer.fail:
                    self.send_error(500)
                    return
                if self.path == issuer.path + "/.well-known/openid-configuration":
                    issuer.hits["discovery"] += 1
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/openid/v1/jwks",
                            "response_types_supported": ["id_token"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": ["RS256"]}
                elif self.path == issuer.path + "/openid/v1/jwks":
                    issuer.hits["jwks"] += 1
                    body = {"keys": [issuer.jwk(k) for k in sorted(issuer.published)]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.path = path
        self.url = "https://127.0.0.1:%d%s" % (self.port, path)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def add_key(self, kid, publish=True, kind="rsa"):
        self.keys[kid] = (ec.generate_private_key(ec.SECP256R1()) if kind == "ec"
                          else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        if publish:
            self.published.add(kid)

    def jwk(self, kid):
        k = self.keys[kid].public_key()
        if isinstance(k, ec.EllipticCurvePublicKey):
            n = k.public_numbers()
            return {"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}
        n = k.public_numbers()
        return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": _int_b64(n.n),
                "e": _int_b64(n.e)}

    def mint(self, sub, aud="api://AzureADTokenExchange", kid="k1", alg="RS256", lifetime=3600,
             now=None, iss=None, extra=None, tamper=False):
        now = int(time.time()) if now is None else now
        claims = {"iss": self.url if iss is None else iss, "sub": sub, "aud": aud, "iat": now,
                  "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
        claims.update(extra or {})
        hdr = {"alg": alg, "kid": kid, "typ": "JWT"}
        h = b64url(json.dumps(hdr).encode())
        p = b64url(json.dumps(claims).encode())
        key = self.keys[kid]
        data = (h + "." + p).encode()
        if alg == "ES256":
            r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif alg.startswith("PS"):
            md = {"PS256": hashes.SHA256(), "PS384": hashes.SHA384(), "PS512": hashes.SHA512()}[alg]
            sig = key.sign(data, padding.PSS(mgf=padding.MGF1(md), salt_length=md.digest_size), md)
        else:
            md = {"RS256": hashes.SHA256(), "RS384": hashes.SHA384(), "RS512": hashes.SHA512()}[alg]
            sig = key.sign(data, padding.PKCS1v15(), md)
        if tamper:
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        return h + "." + p + "." + b64url(sig)

    def kubernetes(self, ns, sa, **kw):
        extra = {"kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": str(uuid.uuid4())},
                                   "pod": {"name": sa + "-pod", "uid": str(uuid.uuid4())}}}
        return self.mint("system:serviceaccount:%s:%s" % (ns, sa), extra=extra, **kw)

    def github(self, sub, **kw):
        extra = {"repository": "octo-org/octo-repo", "repository_id": "456789",
                 "repository_owner_id": "123456", "ref": "refs/heads/main", "sha": "0" * 40,
                 "run_id": "1", "runner_environment": "github-hosted"}
        return self.mint(sub, extra=extra, **kw)
