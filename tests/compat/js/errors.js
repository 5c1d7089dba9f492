// errors.js: Key Vault errors as the SDK surfaces them (RestError statusCode + code).
// argv[2]: {"prefix", "noRoleClientId", "readerClientId"}
// env MIVAULT_TEST_TOKENS: {"<case>": "<JWT minted by `mivault token mint`>"}, each handed to the
// SecretClient by a plain TokenCredential object (challenge verification stays on).
"use strict";

const { ManagedIdentityCredential } = require("@azure/identity");
const lib = require("./lib");

const POLL = { intervalInMs: 200 };

function fixedToken(token) {
  return {
    async getToken() {
      return { token, expiresOnTimestamp: Date.now() + 3600 * 1000 };
    },
  };
}

async function main() {
  const a = lib.args();
  const p = a.prefix;
  const system = lib.secretClient(new ManagedIdentityCredential());
  await system.setSecret(p + "exists", "here");

  // an identity without any role on the vault; a Secrets User (read, not write)
  const noRole = lib.secretClient(new ManagedIdentityCredential({ clientId: a.noRoleClientId }));
  await lib.checkThrows("rbac.noRole.get", () => noRole.getSecret(p + "exists"));
  await lib.checkThrows("rbac.noRole.list", async () => {
    for await (const s of noRole.listPropertiesOfSecrets()) return s;
  });
  const reader = lib.secretClient(new ManagedIdentityCredential({ clientId: a.readerClientId }));
  await lib.check("rbac.reader.get", async () => (await reader.getSecret(p + "exists")).value);
  await lib.checkThrows("rbac.reader.set", () => reader.setSecret(p + "exists", "overwrite"));
  await lib.checkThrows("rbac.reader.delete", () => reader.beginDeleteSecret(p + "exists"));

  // 404, 409 on a soft-deleted name, 403 on a disabled secret
  await lib.checkThrows("notFound", () => system.getSecret(p + "does-not-exist"));
  await lib.checkThrows("notFound.version", () =>
    system.getSecret(p + "exists", { version: "0123456789abcdef0123456789abcdef" }));
  await lib.checkThrows("notFound.deleted", () => system.getDeletedSecret(p + "exists"));
  await system.setSecret(p + "soft", "s");
  await (await system.beginDeleteSecret(p + "soft", POLL)).pollUntilDone();
  await lib.checkThrows("conflict.softDeleted", () => system.setSecret(p + "soft", "again"));
  await system.setSecret(p + "disabled", "d", { enabled: false });
  await lib.checkThrows("disabled.get", () => system.getSecret(p + "disabled"));
  await lib.check("disabled.listed", async () => {
    for await (const s of system.listPropertiesOfSecrets()) if (s.name === p + "disabled") return lib.props(s);
    return null;
  });

  // tokens from elsewhere: another issuer, another tenant, another audience, expired
  const tokens = JSON.parse(process.env.MIVAULT_TEST_TOKENS || "{}");
  for (const [name, token] of Object.entries(tokens)) {
    const log = [];
    const c = lib.secretClient(fixedToken(token), log);
    await lib.check("token." + name, async () => {
      try {
        return { value: (await c.getSecret(p + "exists")).value, wire: log };
      } catch (e) {
        return { error: lib.describeError(e), wire: log };
      }
    });
  }
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
