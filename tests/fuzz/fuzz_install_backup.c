/* fuzz_install_backup.c: the installation backup file (`mivault restore`, src/state/backup.c),
 * read from a file an operator may have got from anywhere.
 *
 * Checked: a file that parses has its entries inside the input, with valid unique names, and
 * rebuilding it from those entries gives back the very same bytes (the format has one encoding);
 * a refusal leaves no entries. */
#include <string.h>

#include "fuzz.h"
#include "state/backup.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct backup_file f;
    mv_rc rc = backup_parse(data, size, &f);
    if (rc != MV_OK) {
        FUZZ_ASSERT(rc == MV_ERR_BAD_REQUEST && f.n == 0);
        return 0;
    }
    FUZZ_ASSERT(f.n <= BACKUP_MAX_ENTRIES);
    mv_buf again;
    mv_buf_init(&again, size + 64);
    FUZZ_ASSERT(backup_put_header(&again) == MV_OK);
    for (size_t i = 0; i < f.n; i++) {
        const struct backup_entry *e = &f.e[i];
        FUZZ_ASSERT(e->data >= data && e->len <= size && e->data + e->len <= data + size);
        FUZZ_ASSERT(e->name[0] && strlen(e->name) <= BACKUP_NAME_MAX);
        FUZZ_ASSERT(backup_find(&f, e->name) == e);
        FUZZ_ASSERT(backup_put_entry(&again, e->name, e->data, e->len) == MV_OK);
    }
    FUZZ_ASSERT(backup_put_end(&again) == MV_OK);
    FUZZ_ASSERT(again.len == size && memcmp(again.p, data, size) == 0);
    mv_buf_free(&again);
    return 0;
}
