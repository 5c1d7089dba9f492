// keys.js: KeyClient and CryptographyClient (@azure/keyvault-keys 4.10), with the VM's
// system-assigned identity: create RSA/EC, import, get, list (pages), update, delete/recover/
// purge pollers; every signing algorithm (signData, so the SDK hashes; then the signature is
// verified by node:crypto with the public JWK alone), encrypt/decrypt and wrap/unwrap with the
// three RSA algorithms, from a KeyVaultKey and from a key id; the errors as RestError.
// argv[2]: {"prefix": "<name prefix>"}
"use strict";

const crypto = require("node:crypto");
const { ManagedIdentityCredential } = require("@azure/identity");
const { KeyClient, CryptographyClient } = require("@azure/keyvault-keys");
const lib = require("./lib");

const POLL = { intervalInMs: 200 };
const HASH = { 256: "sha256", 384: "sha384", 512: "sha512" };

function hashOf(alg) {
  return HASH[alg.endsWith("256K") ? 256 : alg.slice(2, 5)];
}

// Verifies a Key Vault signature over data with node:crypto and the public JWK only.
function verifyLocal(jwk, alg, data, sig) {
  const b = (x) => Buffer.from(x).toString("base64url");
  const pub = jwk.kty.startsWith("RSA")
    ? { kty: "RSA", n: b(jwk.n), e: b(jwk.e) }
    : { kty: "EC", crv: jwk.crv === "P-256K" ? "secp256k1" : jwk.crv, x: b(jwk.x), y: b(jwk.y) };
  const key = crypto.createPublicKey({ key: pub, format: "jwk" });
  const opts = { key };
  if (alg.startsWith("PS")) {
    opts.padding = crypto.constants.RSA_PKCS1_PSS_PADDING;
    opts.saltLength = Number(alg.slice(2, 5)) / 8;
  }
  if (alg.startsWith("ES")) opts.dsaEncoding = "ieee-p1363";
  return crypto.verify(hashOf(alg), data, opts, Buffer.from(sig));
}

async function main() {
  const p = lib.args().prefix;
  const cred = new ManagedIdentityCredential();
  const log = [];
  const client = new KeyClient(process.env.MIVAULT_VAULT_URL, cred, { additionalPolicies: [lib.observer(log)] });

  let rsaKey, ecKeys = {};
  await lib.check("create.rsa", async () => {
    rsaKey = await client.createRsaKey(p + "rsa", { keySize: 2048, tags: { t: "js" } });
    return { kty: rsaKey.keyType, n: rsaKey.key.n.length, ops: rsaKey.keyOperations, tags: rsaKey.properties.tags,
             d: rsaKey.key.d === undefined ? null : "present", version: rsaKey.properties.version };
  });
  for (const crv of ["P-256", "P-384", "P-521", "P-256K"]) {
    await lib.check("create.ec." + crv, async () => {
      const k = await client.createEcKey(p + "ec" + crv.replace("-", ""), { curve: crv });
      ecKeys[crv] = k;
      return { kty: k.keyType, crv: k.key.crv, x: k.key.x.length, ops: k.keyOperations };
    });
  }
  await lib.check("get.latest", async () => (await client.getKey(p + "rsa")).properties.version);
  await lib.check("get.version", async () => (await client.getKey(p + "rsa", { version: rsaKey.properties.version })).name);
  await lib.check("list.pages", async () => {
    const out = [];
    for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 2 })) {
      out.push(page.map((k) => k.name).filter((n) => n.startsWith(p)));
    }
    return out;
  });
  await lib.check("update", async () => {
    const k = await client.updateKeyProperties(p + "ec" + "P256", { tags: { u: "1" }, enabled: true });
    return { tags: k.properties.tags, enabled: k.properties.enabled };
  });
  await lib.checkThrows("get.missing", () => client.getKey(p + "missing"));
  await lib.checkThrows("create.small", () => client.createRsaKey(p + "small", { keySize: 1024 }));

  // every signing algorithm: signData (the SDK hashes), verify on the server, and locally
  const sigs = {};
  for (const source of ["key", "id"]) {
    for (const alg of ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]) {
      await lib.check("sign." + source + "." + alg, async () => {
        const cc = new CryptographyClient(source === "key" ? rsaKey : rsaKey.id, cred);
        const data = Buffer.from("payload " + alg);
        const s = await cc.signData(alg, data);
        const digest = crypto.createHash(hashOf(alg)).update(data).digest();
        const remote = await cc.verify(alg, digest, s.result);
        sigs[alg] = s.result;
        return [remote.result, verifyLocal(rsaKey.key, alg, data, s.result), s.keyID === rsaKey.id];
      });
    }
    for (const [crv, alg] of [["P-256", "ES256"], ["P-384", "ES384"], ["P-521", "ES512"], ["P-256K", "ES256K"]]) {
      await lib.check("sign." + source + "." + alg, async () => {
        const k = ecKeys[crv];
        const cc = new CryptographyClient(source === "key" ? k : k.id, cred);
        const data = Buffer.from("payload " + alg);
        const s = await cc.signData(alg, data);
        const digest = crypto.createHash(hashOf(alg)).update(data).digest();
        const remote = await cc.verify(alg, digest, s.result);
        return [remote.result, verifyLocal(k.key, alg, data, s.result), s.keyID === k.id];
      });
    }
    for (const alg of ["RSA1_5", "RSA-OAEP", "RSA-OAEP-256"]) {
      await lib.check("crypt." + source + "." + alg, async () => {
        const cc = new CryptographyClient(source === "key" ? rsaKey : rsaKey.id, cred);
        const pt = crypto.randomBytes(32);
        const ct = await cc.encrypt({ algorithm: alg, plaintext: pt });
        const dec = await cc.decrypt({ algorithm: alg, ciphertext: ct.result });
        const w = await cc.wrapKey(alg, pt);
        const uw = await cc.unwrapKey(alg, w.result);
        return [Buffer.compare(Buffer.from(dec.result), pt) === 0, Buffer.compare(Buffer.from(uw.result), pt) === 0];
      });
    }
  }
  await lib.check("verify.wrong", async () => {
    const cc = new CryptographyClient(rsaKey.id, cred);
    const digest = crypto.createHash("sha256").update("other").digest();
    return (await cc.verify("RS256", digest, sigs.RS256)).result;
  });

  // errors from the service
  await lib.check("create.limited", async () => (await client.createRsaKey(p + "lim", { keyOps: ["sign", "verify"] })).keyOperations);
  await lib.checkThrows("op.forbidden", async () => {
    // the client reads the key (all six ops) on its first operation; key_ops then shrink on the
    // service, so the client's own check passes and the service must refuse (pitfall 3)
    const cc = new CryptographyClient(rsaKey.id, cred);
    await cc.sign("RS256", crypto.createHash("sha256").update("x").digest());
    await client.updateKeyProperties(p + "rsa", { keyOps: ["sign"] });
    try {
      return await cc.decrypt({ algorithm: "RSA-OAEP", ciphertext: Buffer.alloc(256) });
    } finally {
      await client.updateKeyProperties(p + "rsa", { keyOps: ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"] });
    }
  });
  await lib.checkThrows("digest.length", () => new CryptographyClient(ecKeys["P-256"].id, cred).sign("ES256", Buffer.alloc(43)));

  // import an EC key made here
  await lib.check("import", async () => {
    const { privateKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const j = privateKey.export({ format: "jwk" });
    const buf = (s) => Buffer.from(s, "base64url");
    const k = await client.importKey(p + "imp", { kty: "EC", crv: "P-256", x: buf(j.x), y: buf(j.y), d: buf(j.d),
                                                keyOps: ["sign", "verify"] });
    return { x: k.key.x && Buffer.from(k.key.x).toString("base64url") === j.x, d: k.key.d === undefined ? null : "present" };
  });

  // soft delete, the pollers, recover, purge
  await lib.check("delete", async () => {
    const poller = await client.beginDeleteKey(p + "ecP384", POLL);
    const d = await poller.pollUntilDone();
    return { recoveryId: d.properties.recoveryId || null, name: d.name };
  });
  await lib.check("deleted.get", async () => (await client.getDeletedKey(p + "ecP384")).name);
  await lib.checkThrows("create.over.deleted", () => client.createEcKey(p + "ecP384"));
  await lib.check("recover", async () => {
    const poller = await client.beginRecoverDeletedKey(p + "ecP384", POLL);
    return (await poller.pollUntilDone()).name;
  });
  await lib.check("purge", async () => {
    await (await client.beginDeleteKey(p + "ecP521", POLL)).pollUntilDone();
    await client.purgeDeletedKey(p + "ecP521");
    const names = [];
    for await (const k of client.listDeletedKeys()) names.push(k.name);
    return names.filter((n) => n.startsWith(p));
  });
  await lib.check("wire", async () => [...new Set(log.map((e) => e.url.split("?")[1]).filter(Boolean)
    .map((q) => new URLSearchParams(q).get("api-version")))]);
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
