// secrets.js: every SecretClient operation, with the VM's system-assigned identity.
// argv[2]: {"prefix": "<name prefix>", "otherVault": "<url of a second vault, retention 7 days>",
//           "protectedVault": "<url of a vault with purge protection>"}
"use strict";

const { ManagedIdentityCredential } = require("@azure/identity");
const lib = require("./lib");

const POLL = { intervalInMs: 200 };

// Pages of at most maxPageSize items, and the GETs that fetched them (URL and the nextLink each
// response carried), as seen on the wire.
async function pages(iter, maxPageSize, log) {
  const from = log.length;
  const out = [];
  for await (const page of iter.byPage({ maxPageSize })) {
    out.push({ names: page.map((p) => p.name), versions: page.map((p) => p.version || null) });
  }
  const requests = log.slice(from).filter((e) => e.status === 200).map((e) => ({ url: e.url, nextLink: e.nextLink }));
  return { pages: out, requests };
}

async function main() {
  const a = lib.args();
  const p = a.prefix;
  const cred = new ManagedIdentityCredential();
  const log = [];
  const client = lib.secretClient(cred, log);
  const other = lib.secretClient(cred, null, a.otherVault);
  const prot = lib.secretClient(cred, null, a.protectedVault);
  const now = Math.floor(Date.now() / 1000);
  const nbf = new Date((now - 3600) * 1000);
  const exp = new Date((now + 86400) * 1000);

  // set with content type, tags, enabled/nbf/exp; a second version; get latest and by version
  let v1, v2;
  await lib.check("set.full", async () => {
    const s = await client.setSecret(p + "full", "value-1", {
      contentType: "text/plain", tags: { env: "compat", team: "js" }, enabled: true, notBefore: nbf, expiresOn: exp,
    });
    v1 = s.properties.version;
    return { value: s.value, props: lib.props(s.properties), expect: { nbf: now - 3600, exp: now + 86400 } };
  });
  await lib.check("set.second", async () => {
    const s = await client.setSecret(p + "full", "value-2");
    v2 = s.properties.version;
    return { value: s.value, props: lib.props(s.properties) };
  });
  await lib.check("get.latest", async () => {
    const s = await client.getSecret(p + "full");
    return { value: s.value, props: lib.props(s.properties), v2 };
  });
  await lib.check("get.byVersion", async () => {
    const s = await client.getSecret(p + "full", { version: v1 });
    return { value: s.value, props: lib.props(s.properties), v1 };
  });

  // paging: list secrets and list versions, two per page, following nextLink
  for (let i = 0; i < 5; i++) await client.setSecret(p + "page-" + i, "x" + i);
  for (let i = 0; i < 5; i++) await client.setSecret(p + "versions", "v" + i);
  await lib.check("list.secrets.pages", async () => pages(client.listPropertiesOfSecrets(), 2, log));
  await lib.check("list.secrets.all", async () => {
    const names = [];
    for await (const s of client.listPropertiesOfSecrets()) names.push(lib.props(s));
    return names;
  });
  await lib.check("list.versions.pages", async () => pages(client.listPropertiesOfSecretVersions(p + "versions"), 2, log));
  await lib.check("list.versions.all", async () => {
    const out = [];
    for await (const s of client.listPropertiesOfSecretVersions(p + "full")) out.push(lib.props(s));
    return out;
  });

  // update properties of one version and of the latest
  await lib.check("update.version", async () =>
    lib.props(await client.updateSecretProperties(p + "full", v1, {
      enabled: false, contentType: "application/json", tags: { updated: "yes" },
    })));
  await lib.check("update.version.get", async () => {
    try {
      await client.getSecret(p + "full", { version: v1 });
      return "readable";
    } catch (e) {
      return lib.describeError(e);
    }
  });
  await lib.check("update.latest", async () =>
    lib.props(await client.updateSecretProperties(p + "full", v2, { expiresOn: exp, tags: { latest: "1" } })));
  await lib.check("update.latest.get", async () => {
    const s = await client.getSecret(p + "full");
    return { value: s.value, props: lib.props(s.properties) };
  });

  // delete: visible at once under deletedsecrets, gone from secrets, name reserved
  await client.setSecret(p + "del", "to-delete", { tags: { keep: "me" } });
  await lib.check("delete.poller", async () => {
    const poller = await client.beginDeleteSecret(p + "del", POLL);
    const immediately = lib.props((await client.getDeletedSecret(p + "del")).properties);
    const d = await poller.pollUntilDone();
    return { immediately, result: lib.props(d.properties), deletedOn: d.properties.deletedOn ? Math.floor(d.properties.deletedOn / 1000) : null,
             scheduledPurgeDate: d.properties.scheduledPurgeDate ? Math.floor(d.properties.scheduledPurgeDate / 1000) : null };
  });
  await lib.checkThrows("delete.getSecret", () => client.getSecret(p + "del"));
  await lib.checkThrows("delete.setSameName", () => client.setSecret(p + "del", "again"));
  await lib.check("delete.getDeleted", async () => {
    const d = await client.getDeletedSecret(p + "del");
    return { props: lib.props(d.properties), value: d.value === undefined ? null : d.value,
             deletedOn: d.properties.deletedOn ? Math.floor(d.properties.deletedOn / 1000) : null,
             scheduledPurgeDate: d.properties.scheduledPurgeDate ? Math.floor(d.properties.scheduledPurgeDate / 1000) : null };
  });
  // more deleted secrets so that the deleted list spans pages
  for (let i = 0; i < 4; i++) {
    await client.setSecret(p + "gone-" + i, "g");
    await (await client.beginDeleteSecret(p + "gone-" + i, POLL)).pollUntilDone();
  }
  await lib.check("deleted.list.pages", async () => pages(client.listDeletedSecrets(), 2, log));
  await lib.check("deleted.list.all", async () => {
    const out = [];
    for await (const d of client.listDeletedSecrets()) out.push(lib.props(d.properties));
    return out;
  });

  // recover with the poller finishing (default interval for this one)
  await lib.check("recover.poller", async () => {
    const poller = await client.beginRecoverDeletedSecret(p + "del");
    const r = await poller.pollUntilDone();
    return lib.props(r);
  });
  await lib.check("recover.get", async () => {
    const s = await client.getSecret(p + "del");
    return { value: s.value, props: lib.props(s.properties) };
  });
  await lib.checkThrows("recover.getDeletedAfter", () => client.getDeletedSecret(p + "del"));

  // purge: 204, then the name is free
  await client.setSecret(p + "purge", "p");
  await (await client.beginDeleteSecret(p + "purge", POLL)).pollUntilDone();
  await lib.check("purge", async () => {
    const r = await client.purgeDeletedSecret(p + "purge");
    return r === undefined ? "undefined" : r;
  });
  await lib.checkThrows("purge.getDeletedAfter", () => client.getDeletedSecret(p + "purge"));
  await lib.check("purge.nameFree", async () => (await client.setSecret(p + "purge", "reborn")).value);

  // backup and restore: into another vault, and into this one once the name is free
  let blob;
  await client.setSecret(p + "bk", "bk-1", { contentType: "text/plain", tags: { b: "1" } });
  await client.setSecret(p + "bk", "bk-2");
  await lib.check("backup", async () => {
    blob = await client.backupSecret(p + "bk");
    return { type: Object.prototype.toString.call(blob), length: blob.length,
             containsValue: Buffer.from(blob).includes("bk-2"), b64: Buffer.from(blob).toString("base64") };
  });
  await lib.check("restore.otherVault", async () => lib.props(await other.restoreSecretBackup(blob)));
  await lib.check("restore.otherVault.get", async () => {
    const s = await other.getSecret(p + "bk");
    const versions = [];
    for await (const v of other.listPropertiesOfSecretVersions(p + "bk")) versions.push(v.version);
    return { value: s.value, props: lib.props(s.properties), versions };
  });
  await lib.checkThrows("restore.nameTaken", () => client.restoreSecretBackup(blob));
  await lib.check("restore.sameVault", async () => {
    await (await client.beginDeleteSecret(p + "bk", POLL)).pollUntilDone();
    await client.purgeDeletedSecret(p + "bk");
    const r = await client.restoreSecretBackup(blob);
    const s = await client.getSecret(p + "bk");
    return { props: lib.props(r), value: s.value };
  });
  await lib.checkThrows("restore.tampered", () => {
    const t = Buffer.from(blob);
    t[Math.floor(t.length / 2)] ^= 1;
    return other.restoreSecretBackup(new Uint8Array(t));
  });

  // soft delete with a 7-day retention, and with purge protection
  await lib.check("softdelete.otherVault", async () => {
    await other.setSecret(p + "sd7", "x");
    const d = await (await other.beginDeleteSecret(p + "sd7", POLL)).pollUntilDone();
    return { props: lib.props(d.properties),
             deletedOn: Math.floor(d.properties.deletedOn / 1000),
             scheduledPurgeDate: Math.floor(d.properties.scheduledPurgeDate / 1000) };
  });
  await lib.check("softdelete.protected", async () => {
    const s = await prot.setSecret(p + "pp", "x");
    const d = await (await prot.beginDeleteSecret(p + "pp", POLL)).pollUntilDone();
    return { set: lib.props(s.properties), deleted: lib.props(d.properties) };
  });
  await lib.checkThrows("softdelete.protected.purge", () => prot.purgeDeletedSecret(p + "pp"));
  await lib.check("softdelete.protected.recover", async () =>
    lib.props(await (await prot.beginRecoverDeletedSecret(p + "pp", POLL)).pollUntilDone()));

  lib.checks["wire"] = { ok: true, value: log };
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
