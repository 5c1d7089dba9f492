"""Debian's python3-azure (azure-identity, azure-keyvault-secrets), unchanged, against `mivault up`."""
from compat import CompatTest

ACCEPTANCE = '''
import os
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
c = SecretClient(os.environ["MIVAULT_VAULT_URL"], ManagedIdentityCredential())
c.set_secret("db-password", "s3cret")
print(c.get_secret("db-password").value)
'''


class PythonSdkTest(CompatTest):
    def test_issue_acceptance_program_prints_s3cret(self):
        r = self.run_py(ACCEPTANCE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "s3cret\n")

    def test_default_azure_credential(self):
        r = self.run_py('''
import os
from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
c = SecretClient(os.environ["MIVAULT_VAULT_URL"], DefaultAzureCredential(exclude_shared_token_cache_credential=True))
c.set_secret("dac", "via-dac")
print(c.get_secret("dac").value)
''')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "via-dac\n")

    def test_not_found_is_resource_not_found_error(self):
        r = self.run_py('''
import os
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
c = SecretClient(os.environ["MIVAULT_VAULT_URL"], ManagedIdentityCredential())
try:
    c.get_secret("does-not-exist")
except ResourceNotFoundError as e:
    print("404", e.error.code)
''')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "404 SecretNotFound\n")
