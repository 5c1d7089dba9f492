"""load_scale.py: bulk-load secrets and role assignments straight into a mivault SQLite store.

The benchmark's scale row needs 1,000,000 secrets and 100,000 role assignments; creating them
through the API would take longer than the benchmark itself, and the bench may not change src/
to add a bulk path. So this writes the rows directly, the way the server would:

- values are sealed exactly as src/vault/seal.c + src/crypto/aead.c do: AES-256-GCM under the
  data key, blob = 0x01 || 12-byte random nonce || ciphertext || 16-byte tag, AAD = the version
  byte 0x01 followed by "secret:<vault>/<name>/<version>" in lower case. The AAD binds each row
  to its vault, name and version, so every row is sealed on its own (no reuse of one blob);
- the data key is unwrapped like src/state/state.c: master.key (32 bytes) opens meta.data_key
  (standard base64 of an aead blob with AAD "data-key");
- versions are 32 lower-case hex characters (mv_hexid), times Unix seconds (mv_now).

Role assignments get random ids and principals (no table references principals), spread over
the benchmark vault's scope, other vaults' scopes, the resource group and the subscription.

Run with the server stopped (one big transaction holds the write lock). Usage:
  python3 load_scale.py --state DIR --vault NAME --secrets N [--assignments M] [--prefix s]
prints one JSON line: rows loaded and seconds taken.
"""
import argparse
import base64
import json
import os
import sqlite3
import sys
import time
import uuid

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

AEAD_VERSION = b"\x01"
ROLE_IDS = ("4633458b-17de-408a-b874-0445c86b69e6",   # Key Vault Secrets User
            "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",   # Key Vault Secrets Officer
            "21090545-7ca7-4776-b22c-e363652d74d2")   # Key Vault Reader
BATCH = 20000


def aead_open(key, aad, blob):
    if len(blob) < 29 or blob[:1] != AEAD_VERSION:
        raise ValueError("not an aead v1 blob")
    return AESGCM(key).decrypt(blob[1:13], blob[13:], AEAD_VERSION + aad.encode())


def aead_seal(aes, aad, pt):
    nonce = os.urandom(12)
    return AEAD_VERSION + nonce + aes.encrypt(nonce, pt, AEAD_VERSION + aad.encode())


def data_key(state, db):
    mk = os.environ.get("MIVAULT_MASTER_KEY")
    master = bytes.fromhex(mk) if mk else open(os.path.join(state, "master.key"), "rb").read()
    if len(master) != 32:
        raise SystemExit("master key must be 32 bytes")
    (wrapped,) = db.execute("SELECT value FROM meta WHERE key = 'data_key'").fetchone()
    dk = aead_open(master, "data-key", base64.b64decode(wrapped))
    if len(dk) != 32:
        raise SystemExit("data key must be 32 bytes")
    return dk


def secret_name(prefix, i):
    return "%s%07d" % (prefix, i)


def secret_value(name):
    # Fixed length so every GET response has the same size.
    return ("value-of-" + name + "-" + "x" * 32)[:48].encode()


def load_secrets(db, aes, vault, n, prefix, now):
    vault_l = vault.lower()
    sql = ("INSERT INTO secrets (vault, name, version, sealed, content_type, tags_json, enabled,"
           " nbf, exp, created, updated) VALUES (?, ?, ?, ?, NULL, NULL, 1, 0, 0, ?, ?)")
    done = 0
    while done < n:
        rows = []
        for i in range(done, min(n, done + BATCH)):
            name = secret_name(prefix, i)
            version = os.urandom(16).hex()
            aad = "secret:%s/%s/%s" % (vault_l, name.lower(), version)
            rows.append((vault, name, version, aead_seal(aes, aad, secret_value(name)), now, now))
        db.executemany(sql, rows)
        done += len(rows)


def load_assignments(db, vault_scope, n, now):
    # vault_scope = /subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/V
    parts = vault_scope.split("/")
    sub_scope = "/".join(parts[:3])
    rg_scope = "/".join(parts[:5])
    others = ["%s/providers/Microsoft.KeyVault/vaults/other%04d" % (rg_scope, k) for k in range(1000)]
    sql = "INSERT INTO role_assignments (id, principal_id, role_id, scope, created) VALUES (?, ?, ?, ?, ?)"
    rows = []
    for i in range(n):
        r = i % 10
        scope = vault_scope if r < 4 else others[i % 1000] if r < 8 else rg_scope if r == 8 else sub_scope
        rows.append((str(uuid.uuid4()), str(uuid.uuid4()), ROLE_IDS[i % 3], scope, now))
    db.executemany(sql, rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state", required=True)
    ap.add_argument("--vault", required=True)
    ap.add_argument("--secrets", type=int, required=True)
    ap.add_argument("--assignments", type=int, default=0)
    ap.add_argument("--prefix", default="s")
    a = ap.parse_args()
    t0 = time.time()
    db = sqlite3.connect(os.path.join(a.state, "mivault.db"), isolation_level=None, timeout=60)
    db.execute("PRAGMA foreign_keys = ON")
    db.execute("PRAGMA synchronous = FULL")
    aes = AESGCM(data_key(a.state, db))
    row = db.execute("SELECT name FROM vaults WHERE name = ?", (a.vault,)).fetchone()
    if not row:
        raise SystemExit("vault %s does not exist in the store" % a.vault)
    vault = row[0]
    (sub, rg) = (json.load(open(os.path.join(a.state, "admin.json")))[k] for k in ("subscriptionId", "resourceGroup"))
    scope = "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s" % (sub, rg, vault)
    now = int(time.time())
    db.execute("BEGIN IMMEDIATE")
    try:
        load_secrets(db, aes, vault, a.secrets, a.prefix, now)
        t1 = time.time()
        load_assignments(db, scope, a.assignments, now)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    t2 = time.time()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    t3 = time.time()
    json.dump({"secrets": a.secrets, "assignments": a.assignments, "secrets_s": round(t1 - t0, 2),
               "assignments_s": round(t2 - t1, 2), "checkpoint_s": round(t3 - t2, 2),
               "total_s": round(t3 - t0, 2)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
