// lib.js: what every check script of the JS compatibility suite shares. The scripts use
// @azure/identity and @azure/keyvault-secrets exactly as a user would (challenge verification
// on, default service version); the only addition is an observing pipeline policy that records
// each attempt's method, URL and status and changes nothing. Each script prints one JSON object
// {"checks": {name: result}} on stdout; the Python driver (../test_js_sdk.py) asserts on it.
"use strict";

const { SecretClient } = require("@azure/keyvault-secrets");

const checks = {};

// One request/response per attempt (position perRetry: after the retry policy, so retried
// attempts and the Key Vault challenge round trip are each seen). For list pages it also notes
// the nextLink of the body as the service sent it: the SDK's mapped pages do not expose it.
function observer(log) {
  return {
    position: "perRetry",
    policy: {
      name: "mivaultCompatObserver",
      async sendRequest(request, next) {
        const response = await next(request);
        const entry = {
          method: request.method,
          url: request.url,
          status: response.status,
          retryAfter: response.headers.get("retry-after") || null,
          auth: request.headers.has("authorization"),
        };
        if (response.status === 200 && request.method === "GET" && response.bodyAsText) {
          try {
            const body = JSON.parse(response.bodyAsText);
            if (Array.isArray(body.value)) entry.nextLink = body.nextLink === undefined ? "(absent)" : body.nextLink;
          } catch {
            entry.nextLink = "(unparsable body)";
          }
        }
        log.push(entry);
        return response;
      },
    },
  };
}

function secretClient(credential, log, vaultUrl) {
  const options = log ? { additionalPolicies: [observer(log)] } : {};
  return new SecretClient(vaultUrl || process.env.MIVAULT_VAULT_URL, credential, options);
}

// What the SDK throws, in the terms the driver asserts on.
function describeError(e) {
  const out = { name: e && e.name, message: String((e && e.message) || e).slice(0, 600) };
  if (e && e.statusCode !== undefined) out.statusCode = e.statusCode;
  if (e && e.code !== undefined) out.code = e.code;
  // @azure/keyvault-secrets deserializes the body's error.innererror as details.error.innerError
  const inner = e && e.details && e.details.error && e.details.error.innerError;
  if (inner && inner.code) out.innerCode = inner.code;
  if (e && e.response && e.response.headers) {
    const h = e.response.headers;
    const get = typeof h.get === "function" ? (k) => h.get(k) : (k) => h[k];
    out.wwwAuthenticate = get("www-authenticate") || null;
    out.retryAfter = get("retry-after") || null;
  }
  return out;
}

// Run one named check; its value (or the error it threw) is recorded, never fatal.
async function check(name, fn) {
  const start = Date.now();
  try {
    const value = await fn();
    checks[name] = { ok: true, value: value === undefined ? null : value, ms: Date.now() - start };
  } catch (e) {
    checks[name] = { ok: false, error: describeError(e), ms: Date.now() - start };
  }
}

// Expect fn to throw; record the error as the value.
async function checkThrows(name, fn) {
  await check(name, async () => {
    let value;
    try {
      value = await fn();
    } catch (e) {
      return describeError(e);
    }
    throw new Error("expected an error, got " + JSON.stringify(value));
  });
}

function jwtClaims(token) {
  const part = token.split(".")[1];
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

function props(p) {
  const d = (x) => (x instanceof Date ? Math.floor(x.getTime() / 1000) : x === undefined ? null : x);
  return {
    name: p.name,
    id: p.id,
    version: p.version,
    vaultUrl: p.vaultUrl,
    enabled: p.enabled === undefined ? null : p.enabled,
    contentType: p.contentType === undefined ? null : p.contentType,
    tags: p.tags || null,
    notBefore: d(p.notBefore),
    expiresOn: d(p.expiresOn),
    createdOn: d(p.createdOn),
    updatedOn: d(p.updatedOn),
    recoveryLevel: p.recoveryLevel === undefined ? null : p.recoveryLevel,
    recoverableDays: p.recoverableDays === undefined ? null : p.recoverableDays,
    recoveryId: p.recoveryId === undefined ? null : p.recoveryId,
  };
}

function args() {
  return process.argv[2] ? JSON.parse(process.argv[2]) : {};
}

function done() {
  process.stdout.write(JSON.stringify({ checks }) + "\n");
}

module.exports = { check, checkThrows, checks, describeError, jwtClaims, props, secretClient, observer, args, done };
