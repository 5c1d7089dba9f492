// federation.js: service principals and workload identity federation with @azure/identity,
// unchanged, each credential used by a SecretClient.
// argv[2]: {"scope": "<vault resource>/.default", "cases": [{"name", "kind":
//   "wi" | "secret" | "cert" | "mi" | "dac", "tenantId", "clientId", "clientSecret",
//   "certificatePath", "authorityHost", "secret": "<secret name>", "expectError": bool}]}
// wi/secret/cert get disableInstanceDiscovery: true (the SDK's switch for custom clouds); mi and
// dac take everything from the environment the driver sets (AZURE_AUTHORITY_HOST,
// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE), as in a pod.
"use strict";

const {
  ClientCertificateCredential,
  ClientSecretCredential,
  DefaultAzureCredential,
  ManagedIdentityCredential,
  WorkloadIdentityCredential,
} = require("@azure/identity");
const lib = require("./lib");

function make(c) {
  const common = { authorityHost: c.authorityHost, disableInstanceDiscovery: true };
  switch (c.kind) {
    case "wi":
      return new WorkloadIdentityCredential({ ...common, tenantId: c.tenantId, clientId: c.clientId,
                                              tokenFilePath: c.tokenFile });
    case "secret":
      return new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, common);
    case "cert":
      return new ClientCertificateCredential(c.tenantId, c.clientId, { certificatePath: c.certificatePath }, common);
    case "mi":
      return new ManagedIdentityCredential();
    default:
      return new DefaultAzureCredential();
  }
}

async function main() {
  const a = lib.args();
  for (const c of a.cases) {
    let cred;
    await lib.check(c.name + ".construct", async () => {
      cred = make(c);
    });
    if (!cred) continue;
    if (c.expectError) {
      await lib.checkThrows(c.name + ".error", async () => cred.getToken(a.scope));
      continue;
    }
    await lib.check(c.name + ".token", async () => {
      const t = await cred.getToken(a.scope);
      const claims = lib.jwtClaims(t.token);
      return { oid: claims.oid, appid: claims.appid, xms_mirid: claims.xms_mirid || null, idtyp: claims.idtyp };
    });
    const client = lib.secretClient(cred, []);
    await lib.check(c.name + ".set", async () => (await client.setSecret(c.secret, "via-" + c.name)).name);
    await lib.check(c.name + ".get", async () => (await client.getSecret(c.secret)).value);
  }
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
