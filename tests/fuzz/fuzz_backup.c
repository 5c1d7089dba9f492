/* fuzz_backup.c: restore of a secret backup (src/vault/backup.c: vault_backup_open), the JSON
 * body, the base64url blob, its AES-256-GCM envelope under the data key, and the backup
 * document inside it.
 *
 * Input: one mode byte, then the bytes. Mode 0: the bytes are the restore body as a client
 * sends it (random bytes never pass the GCM tag, so this exercises what comes before it). Mode
 * 1: the bytes are the plaintext document; the harness seals it as vault_op_backup does, with a
 * fixed test key, so the document checks run on fuzzed content. Checked: an opened document is
 * the format, v 1, a valid name and 1..500 versions, each with a valid version id, a string
 * value within 25 KB, enabled a boolean and non-negative times. */
#include <jansson.h>
#include <string.h>

#include "common/b64.h"
#include "crypto/aead.h"
#include "fuzz.h"
#include "vault/vault_internal.h"

/* A fixed data key: the harness is about parsing, not about keeping this secret. */
static const unsigned char KEY[AEAD_KEY_LEN] = {
    0x6d, 0x69, 0x76, 0x61, 0x75, 0x6c, 0x74, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x74, 0x65, 0x73,
    0x74, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x6e, 0x6f, 0x74, 0x2d, 0x73, 0x65, 0x63, 0x72, 0x65, 0x74,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

static void check_doc(const json_t *doc)
{
    FUZZ_ASSERT(json_is_object(doc));
    const char *format = json_string_value(json_object_get(doc, "format"));
    FUZZ_ASSERT(format && strcmp(format, "mivault-secret-backup") == 0);
    FUZZ_ASSERT(vault_name_ok(json_string_value(json_object_get(doc, "name"))));
    const json_t *vers = json_object_get(doc, "versions");
    FUZZ_ASSERT(json_array_size(vers) >= 1 && json_array_size(vers) <= VAULT_BACKUP_MAX_VERSIONS);
    size_t i;
    const json_t *v;
    json_array_foreach(vers, i, v) {
        FUZZ_ASSERT(vault_version_ok(json_string_value(json_object_get(v, "version"))));
        FUZZ_ASSERT(json_string_length(json_object_get(v, "value")) <= MV_SECRET_MAX_VALUE_BYTES);
        FUZZ_ASSERT(json_is_boolean(json_object_get(v, "enabled")));
        FUZZ_ASSERT(json_integer_value(json_object_get(v, "created")) >= 0);
    }
}

static void open_body(const char *body, size_t len)
{
    json_t *doc = NULL;
    mv_rc rc = vault_backup_open(KEY, body, len, &doc);
    if (rc != MV_OK) {
        FUZZ_ASSERT(doc == NULL);
        FUZZ_ASSERT(rc == MV_ERR_BAD_REQUEST || rc == MV_ERR_LIMIT);
        return;
    }
    check_doc(doc);
    vault_json_wipe(doc);
    json_decref(doc);
}

/* {"value":"<base64url(seal(plain))>"} */
static void sealed(const uint8_t *plain, size_t len)
{
    mv_buf ct, body;
    mv_buf_init(&ct, len + AEAD_OVERHEAD);
    mv_buf_init(&body, 2 * (len + AEAD_OVERHEAD) + 32);
    mv_rc rc = aead_seal(KEY, VAULT_BACKUP_AAD, plain, len, &ct);
    if (rc == MV_ERR_LIMIT)
        goto out;
    FUZZ_ASSERT(rc == MV_OK);
    if (mv_buf_adds(&body, "{\"value\":\"") != MV_OK ||
        b64url_encode(&body, ct.p, ct.len) != MV_OK || mv_buf_adds(&body, "\"}") != MV_OK)
        fuzz_fail("building the body");
    open_body(body.p, body.len);
out:
    mv_buf_free(&ct);
    mv_buf_free(&body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        sealed(data + 1, size - 1);
    else
        open_body((const char *)data + 1, size - 1);
    return 0;
}
