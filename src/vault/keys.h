/* keys.h: what other parts of the vault (certificates) use of Key Vault keys: building a key
 * version's stored row from a loaded EVP_PKEY and adding it, e.g. the managed key of a
 * certificate (same name and version as the certificate, managed: true).
 *
 * Vault layer only (src/vault/); the private key is sealed under the data key with the AAD
 * "key:<vault>/<name>/<version>" before it reaches the store, and never leaves otherwise. */
#ifndef MV_VAULT_KEYS_H
#define MV_VAULT_KEYS_H

#include <openssl/evp.h>
#include <stdint.h>

#include "store/store.h"

struct vault_key_attrs {
    int enabled;
    int64_t nbf, exp;      /* 0 = unset */
    const char *tags_json; /* JSON object text or NULL */
    int managed;
};

/* The 6 operations an RSA key gets by default, and the 2 of an EC key (NULL-terminated). */
extern const char *const VAULT_KEY_OPS_RSA[];
extern const char *const VAULT_KEY_OPS_EC[];

/* Fills *out (clear with st_key_clear) with a new version of vault/name: pkey sealed as PKCS#8
 * under data_key, the public JWK with kty ("RSA", "RSA-HSM", "EC", "EC-HSM"; NULL = from the
 * key) and key_ops (NULL-terminated; NULL = the default of the key type), created = updated =
 * now. MV_ERR_BAD_REQUEST for a key op that is not one of Key Vault's. */
MV_MUST_CHECK mv_rc vault_key_row(const unsigned char *data_key, const char *vault,
                                  const char *name, const char *version, EVP_PKEY *pkey,
                                  const char *kty, const char *const *key_ops,
                                  const struct vault_key_attrs *a, int64_t now,
                                  struct st_key *out);

/* vault_key_row with managed = 1, then store_key_add on st (CONFLICT if the name is
 * soft-deleted or the version exists). */
MV_MUST_CHECK mv_rc vault_key_put_managed(struct store *st, const unsigned char *data_key,
                                          const char *vault, const char *name,
                                          const char *version, EVP_PKEY *pkey,
                                          const char *const *key_ops,
                                          const struct vault_key_attrs *a, int64_t now);

/* Opens the sealed private key of a stored key row (k->vault, k->name, k->version). */
MV_MUST_CHECK mv_rc vault_key_open(const unsigned char *data_key, const struct st_key *k,
                                   EVP_PKEY **out);

#endif
