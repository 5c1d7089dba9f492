// certificates.js: CertificateClient (@azure/keyvault-certificates 4.10) with the VM's
// system-assigned identity. Phase 1: create with issuer Self through the create poller (PKCS#12
// and PEM, RSA and EC), get latest / by version, policy get and update, properties update,
// list pages, versions, the certificate's secret through SecretClient (checked with node:crypto),
// delete / recover pollers, purge, issuers and contacts, errors; an issuer-Unknown create
// whose CSR it returns; cancel and delete of a pending operation; backup, purge and restore. Phase 2 (argv x5c: the chain the driver signed; pfx/pem: files the
// driver made): merge, and import of a PFX with password and of PEM text.
// argv[2]: {"phase": 1|2, "prefix": "...", "x5c": [b64...], "pfx": b64, "pem": b64}
"use strict";

const crypto = require("node:crypto");
const { ManagedIdentityCredential } = require("@azure/identity");
const { CertificateClient } = require("@azure/keyvault-certificates");
const lib = require("./lib");

const POLL = { intervalInMs: 200 };

function certInfo(c) {
  const x = new crypto.X509Certificate(Buffer.from(c.cer));
  return {
    name: c.name,
    id: c.properties.id,
    keyId: c.keyId,
    secretId: c.secretId,
    version: c.properties.version,
    x5tOk: Buffer.from(c.properties.x509Thumbprint).equals(crypto.createHash("sha1").update(c.cer).digest()),
    subject: x.subject,
    san: x.subjectAltName || null,
    tags: c.properties.tags || null,
    enabled: c.properties.enabled,
    policy: c.policy
      ? { subject: c.policy.subject, issuerName: c.policy.issuerName, contentType: c.policy.contentType,
          keyType: c.policy.keyType, keySize: c.policy.keySize || null, curve: c.policy.keyCurveName || null,
          months: c.policy.validityInMonths, exportable: c.policy.exportable }
      : null,
  };
}

async function phase1(client, secrets, p, log) {
  await lib.check("create.self.pkcs12", async () => {
    const poller = await client.beginCreateCertificate(p + "rsa", {
      issuerName: "Self", subject: "CN=js.test", subjectAlternativeNames: { dnsNames: ["js.test"] },
      validityInMonths: 6, contentType: "application/x-pkcs12", keyType: "RSA", keySize: 2048,
    }, Object.assign({ tags: { t: "js" } }, POLL));
    const c = await poller.pollUntilDone();
    return certInfo(c);
  });
  await lib.check("create.paths", async () =>
    log.filter((e) => e.status !== 401).slice(0, 3).map((e) => [e.method, new URL(e.url).pathname, e.status]));
  await lib.check("secret.pkcs12", async () => {
    const s = await secrets.getSecret(p + "rsa");
    const cert = await client.getCertificate(p + "rsa");
    // node:crypto cannot open a PFX: check it is a DER PKCS#12 that holds the certificate's DER
    const pfx = Buffer.from(s.value, "base64");
    return { contentType: s.properties.contentType, managed: s.properties.managed,
             der: pfx[0] === 0x30, holdsCert: pfx.includes(Buffer.from(cert.cer)) };
  });
  await lib.check("create.self.pem.ec", async () => {
    const poller = await client.beginCreateCertificate(p + "ec", {
      issuerName: "Self", subject: "CN=ec.js.test", keyType: "EC", keyCurveName: "P-256",
      contentType: "application/x-pem-file",
    }, POLL);
    return certInfo(await poller.pollUntilDone());
  });
  await lib.check("secret.pem", async () => {
    const s = await secrets.getSecret(p + "ec");
    const cert = await client.getCertificate(p + "ec");
    const key = crypto.createPrivateKey(s.value);
    const x = new crypto.X509Certificate(s.value.slice(s.value.indexOf("-----BEGIN CERTIFICATE-----")));
    return { contentType: s.properties.contentType, keyFirst: s.value.startsWith("-----BEGIN PRIVATE KEY-----"),
             matches: x.checkPrivateKey(key), sameCert: x.raw.equals(Buffer.from(cert.cer)) };
  });
  await lib.check("get.version", async () => {
    const latest = await client.getCertificate(p + "rsa");
    const v = await client.getCertificateVersion(p + "rsa", latest.properties.version);
    return { id: v.id === latest.id, policy: v.policy === undefined ? null : "present" };
  });
  await lib.check("policy.update", async () => {
    // (4.10.3 returns an empty policy from updateCertificatePolicy whatever the service says)
    await client.updateCertificatePolicy(p + "rsa", { subject: "CN=changed.js.test", validityInMonths: 24 });
    const got = await client.getCertificatePolicy(p + "rsa");
    return [got.subject, got.validityInMonths, got.issuerName];
  });
  await lib.check("properties.update", async () => {
    const c = await client.updateCertificateProperties(p + "rsa", "", { enabled: false, tags: { u: "1" } });
    return [c.properties.enabled, c.properties.tags];
  });
  await lib.check("list.pages", async () => {
    const out = [];
    for await (const page of client.listPropertiesOfCertificates().byPage({ maxPageSize: 1 })) {
      out.push(page.map((c) => c.name));
    }
    return out;
  });
  await lib.check("versions", async () => {
    await (await client.beginCreateCertificate(p + "ec", { issuerName: "Self", subject: "CN=ec2", keyType: "EC" }, POLL)).pollUntilDone();
    const out = [];
    for await (const c of client.listPropertiesOfCertificateVersions(p + "ec")) out.push(c.version);
    return out.length;
  });
  await lib.check("delete.recover.purge", async () => {
    const d = await (await client.beginDeleteCertificate(p + "ec", POLL)).pollUntilDone();
    const got = await client.getDeletedCertificate(p + "ec");
    const r = await (await client.beginRecoverDeletedCertificate(p + "ec", POLL)).pollUntilDone();
    await (await client.beginDeleteCertificate(p + "ec", POLL)).pollUntilDone();
    await client.purgeDeletedCertificate(p + "ec");
    let gone = false;
    try {
      await client.getDeletedCertificate(p + "ec");
    } catch (e) {
      gone = e.statusCode === 404;
    }
    return { deletedName: d.name, recoveryId: d.recoveryId, got: got.name, recovered: r.name, gone };
  });
  await lib.checkThrows("get.missing", () => client.getCertificate(p + "none"));
  await lib.check("issuers.contacts", async () => {
    const i = await client.createIssuer(p + "ca", "Test");
    const g = await client.getIssuer(p + "ca");
    await client.deleteIssuer(p + "ca");
    const cs = await client.setContacts([{ email: "js@example.test", name: "JS" }]);
    const gc = await client.getContacts();
    const dc = await client.deleteContacts();
    const emails = (x) => (Array.isArray(x) ? x : x.contactList || []).map((c) => c.email);
    return [i.name, i.provider, g.provider, emails(cs), emails(gc), emails(dc)];
  });
  // issuer Unknown: the create poller keeps polling while inProgress; stop it and hand the CSR on
  await lib.check("unknown.create", async () => {
    const poller = await client.beginCreateCertificate(p + "ext", { issuerName: "Unknown", subject: "CN=ext.js.test" }, POLL);
    await poller.poll();
    const state = poller.getOperationState();
    poller.stopPolling();
    const op = await client.getCertificateOperation(p + "ext");
    const o = op.getOperationState().certificateOperation;
    return { done: state.isCompleted === true, status: o.status, issuer: o.issuerName,
             csr: Buffer.from(o.csr).toString("base64") };
  });
  // cancel an issuer-Unknown operation through the operation poller, then delete it
  await lib.check("cancel.delete", async () => {
    const created = await client.beginCreateCertificate(p + "cancelme", { issuerName: "Unknown", subject: "CN=cancel.js.test" }, POLL);
    await created.poll();
    created.stopPolling();
    const op = await client.getCertificateOperation(p + "cancelme", POLL);
    await op.cancelOperation();
    const o = op.getOperationState().certificateOperation;
    const d = await client.deleteCertificateOperation(p + "cancelme");
    return { status: o.status, cancellationRequested: o.cancellationRequested, deleted: d.status };
  });
  await lib.checkThrows("cancel.gone", () => client.getCertificateOperation(p + "cancelme"));
  await lib.checkThrows("cancel.nocert", () => client.getCertificate(p + "cancelme"));
  // backup, delete and purge, restore: the same certificate, version, key and secret come back
  await lib.check("backup.restore", async () => {
    const before = await client.getCertificate(p + "rsa");
    const blob = await client.backupCertificate(p + "rsa");
    await (await client.beginDeleteCertificate(p + "rsa", POLL)).pollUntilDone();
    await client.purgeDeletedCertificate(p + "rsa");
    let gone = false;
    try {
      await client.getCertificate(p + "rsa");
    } catch (e) {
      gone = e.statusCode === 404;
    }
    const r = await client.restoreCertificateBackup(blob);
    const listed = [];
    for await (const sp of secrets.listPropertiesOfSecrets()) if (sp.name === p + "rsa") listed.push(sp.managed);
    return { bytes: blob.length > 0, gone, name: r.name, sameCer: Buffer.from(r.cer).equals(Buffer.from(before.cer)),
             sameVersion: r.properties.version === before.properties.version, policy: r.policy ? r.policy.subject : null,
             secretManaged: listed };
  });
  await lib.checkThrows("restore.garbage", () => client.restoreCertificateBackup(Buffer.from("not a backup")));
}

async function phase2(client, secrets, p, a) {
  await lib.check("merge", async () => {
    const c = await client.mergeCertificate(p + "ext", a.x5c.map((b) => Buffer.from(b, "base64")));
    const op = await client.getCertificateOperation(p + "ext");
    return { info: certInfo(c), status: op.getOperationState().certificateOperation.status };
  });
  await lib.check("import.pfx", async () =>
    certInfo(await client.importCertificate(p + "imppfx", Buffer.from(a.pfx, "base64"), { password: "pw" })));
  await lib.check("import.pem", async () => {
    const c = await client.importCertificate(p + "imppem", Buffer.from(a.pem, "base64"),
      { policy: { contentType: "application/x-pem-file", issuerName: "Unknown" } });
    const s = await secrets.getSecret(p + "imppem");
    return { info: certInfo(c), contentType: s.properties.contentType };
  });
  await lib.checkThrows("import.wrongpw", () =>
    client.importCertificate(p + "bad", Buffer.from(a.pfx, "base64"), { password: "nope" }));
}

async function main() {
  const a = lib.args();
  const p = a.prefix;
  const cred = new ManagedIdentityCredential();
  const log = [];
  const client = new CertificateClient(process.env.MIVAULT_VAULT_URL, cred, { additionalPolicies: [lib.observer(log)] });
  const secrets = lib.secretClient(cred);
  if (a.phase === 1) await phase1(client, secrets, p, log);
  else await phase2(client, secrets, p, a);
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
