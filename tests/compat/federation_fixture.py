"""federation_fixture.py: what the federation compatibility tests share (Python and JS): a test
OIDC issuer (tests/integration/oidc_issuer.py) whose CA `mivault up --trust-ca` trusts, a
user-assigned identity `pywi` trusting its Kubernetes service account apps/web and a service
principal `pysp` with a secret and a certificate, both Key Vault Secrets Officer on vault dev."""
import datetime
import json
import os
import shutil
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from oidc_issuer import Issuer  # tests/integration, put on the path by compat


class FederationFixture:
    """Mix in before CompatTest."""
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mivault-compat-issuer.")
        cls.issuer = Issuer(cls.tmp, path="/k8s")
        cls.up_args = ("--trust-ca", cls.issuer.ca_file)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.issuer.close()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def prepare(cls):
        up = cls.up
        with open(os.path.join(up.dir, "config.json")) as f:
            cls.authority = json.load(f)["publicUrl"]
        uai = up.cli("identity", "create", "--name", "pywi")
        cls.uai = uai
        up.cli("identity", "federated-credential", "create", "--identity", "pywi", "--name", "pods",
               "--issuer", cls.issuer.url, "--subject", "system:serviceaccount:apps:web")
        up.cli("role", "assignment", "create", "--assignee", uai["properties"]["principalId"],
               "--role", "Key Vault Secrets Officer", "--scope", "vault:dev")
        cls.sp = up.cli("sp", "create", "--name", "pysp")
        cls.tenant = cls.sp["tenant"]
        up.cli("role", "assignment", "create", "--assignee", cls.sp["id"],
               "--role", "Key Vault Secrets Officer", "--scope", "vault:dev")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pysp")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
        cls.cert_pem = os.path.join(cls.tmp, "sp.pem")
        with open(cls.cert_pem, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        pub = os.path.join(cls.tmp, "sp-cert.pem")
        with open(pub, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        up.cli("sp", "credential", "reset", "--id", cls.sp["appId"], "--cert-file", pub)
        cls.scope = "https://vault.azure.net/.default"

