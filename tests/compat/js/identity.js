// identity.js: credentials of @azure/identity against the agent, each used by a SecretClient.
// argv[2]: {"scope": "<vault resource>/.default", "cases": [{"name", "kind": "mi"|"dac",
//            "options": {clientId|objectId|resourceId}?, "secret": "<secret name>"}]}
// Which managed-identity source msal-node picks (IMDS, App Service, Cloud Shell) is decided by
// the environment the driver gives this process, exactly as for a user's program.
"use strict";

const { ManagedIdentityCredential, DefaultAzureCredential } = require("@azure/identity");
const lib = require("./lib");

async function main() {
  const a = lib.args();
  for (const c of a.cases) {
    const start = Date.now();
    let cred;
    await lib.check(c.name + ".construct", async () => {
      cred = c.kind === "dac" ? new DefaultAzureCredential(c.options) : new ManagedIdentityCredential(c.options);
    });
    if (!cred) continue;
    await lib.check(c.name + ".token", async () => {
      const t = await cred.getToken(a.scope);
      const claims = lib.jwtClaims(t.token);
      return {
        oid: claims.oid,
        appid: claims.appid,
        aud: claims.aud,
        iss: claims.iss,
        xms_mirid: claims.xms_mirid,
        secondsLeft: Math.round((t.expiresOnTimestamp - Date.now()) / 1000),
      };
    });
    const log = [];
    const client = lib.secretClient(cred, log);
    await lib.check(c.name + ".set", async () => lib.props((await client.setSecret(c.secret, "via-" + c.name)).properties));
    await lib.check(c.name + ".get", async () => (await client.getSecret(c.secret)).value);
    lib.checks[c.name + ".elapsedMs"] = { ok: true, value: Date.now() - start };
    lib.checks[c.name + ".wire"] = { ok: true, value: log };
  }
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
