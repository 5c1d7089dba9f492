// throttle.js: a vault with low limits (`mivault up --throttle-ops N --throttle-creates M`).
// Two loops run side by side, one setting secrets (creates), one reading (other transactions),
// each until it has seen a 429 and the SDK's own retry (after Retry-After) has succeeded.
// argv[2]: {"prefix", "maxCalls"}
"use strict";

const { ManagedIdentityCredential } = require("@azure/identity");
const lib = require("./lib");

async function loop(name, call, maxCalls) {
  const log = [];
  const results = [];
  const client = lib.secretClient(new ManagedIdentityCredential(), log);
  await client.getSecret(lib.args().prefix + "seed"); // challenge and token before counting
  const start = Date.now();
  for (let i = 0; i < maxCalls && !log.some((e) => e.status === 429); i++) {
    results.push(await call(client, i));
  }
  return { calls: results.length, results, ms: Date.now() - start,
           statuses: log.map((e) => e.status), retryAfter: log.filter((e) => e.status === 429).map((e) => e.retryAfter) };
}

async function main() {
  const a = lib.args();
  const p = a.prefix;
  await lib.secretClient(new ManagedIdentityCredential()).setSecret(p + "seed", "seed");
  const [creates, reads] = await Promise.all([
    lib.check("creates", () => loop("creates", async (c, i) => (await c.setSecret(p + "t" + i, "v" + i)).value, a.maxCalls)),
    lib.check("reads", () => loop("reads", async (c) => (await c.getSecret(p + "seed")).value, a.maxCalls)),
  ]);
  void creates;
  void reads;
  lib.done();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
