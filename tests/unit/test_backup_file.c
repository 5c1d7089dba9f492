/* test_backup_file.c: the installation backup file (src/state/backup.c): a written file parses
 * back to its entries, and every damage is refused whole: truncation anywhere, a changed byte
 * anywhere, bytes after the end, a bad or repeated name, a length past the end, another magic or
 * version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "state/backup.h"

#define MAXB (1 << 20)

static void build(mv_buf *b)
{
    mv_buf_init(b, MAXB);
    assert_int_equal(backup_put_header(b), MV_OK);
    assert_int_equal(backup_put_entry(b, "config.json", "{\"a\":1}", 7), MV_OK);
    assert_int_equal(backup_put_entry(b, "mivault.db", "\0\1\2\3", 4), MV_OK);
    assert_int_equal(backup_put_entry(b, "empty", "", 0), MV_OK);
    assert_int_equal(backup_put_end(b), MV_OK);
}

static void refused(const void *p, size_t n)
{
    struct backup_file f;
    assert_int_equal(backup_parse(p, n, &f), MV_ERR_BAD_REQUEST);
    assert_int_equal(f.n, 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    mv_buf b;
    struct backup_file f;
    build(&b);
    assert_int_equal(backup_parse((const unsigned char *)b.p, b.len, &f), MV_OK);
    assert_int_equal(f.n, 3);
    const struct backup_entry *c = backup_find(&f, "config.json");
    assert_non_null(c);
    assert_int_equal(c->len, 7);
    assert_memory_equal(c->data, "{\"a\":1}", 7);
    const struct backup_entry *d = backup_find(&f, "mivault.db");
    assert_non_null(d);
    assert_int_equal(d->len, 4);
    assert_memory_equal(d->data, "\0\1\2\3", 4);
    assert_int_equal(backup_find(&f, "empty")->len, 0);
    assert_null(backup_find(&f, "master.key"));
    mv_buf_free(&b);
}

static void test_every_truncation_and_flip_refused(void **state)
{
    (void)state;
    mv_buf b;
    build(&b);
    unsigned char *copy = malloc(b.len + 1);
    assert_non_null(copy);
    for (size_t n = 0; n < b.len; n++)
        refused(b.p, n);
    for (size_t i = 0; i < b.len; i++) {
        memcpy(copy, b.p, b.len);
        copy[i] ^= 0x01;
        refused(copy, b.len);
    }
    memcpy(copy, b.p, b.len);
    copy[b.len] = 0;
    refused(copy, b.len + 1); /* a byte after the end */
    free(copy);
    mv_buf_free(&b);
}

static void test_bad_entries_refused(void **state)
{
    (void)state;
    mv_buf b;
    /* a repeated name */
    mv_buf_init(&b, MAXB);
    assert_int_equal(backup_put_header(&b), MV_OK);
    assert_int_equal(backup_put_entry(&b, "a", "1", 1), MV_OK);
    assert_int_equal(backup_put_entry(&b, "a", "2", 1), MV_OK);
    assert_int_equal(backup_put_end(&b), MV_OK);
    refused(b.p, b.len);
    mv_buf_free(&b);
    /* too many entries */
    mv_buf_init(&b, MAXB);
    assert_int_equal(backup_put_header(&b), MV_OK);
    for (int i = 0; i <= BACKUP_MAX_ENTRIES; i++) {
        char name[8];
        name[0] = (char)('a' + i);
        name[1] = '\0';
        assert_int_equal(backup_put_entry(&b, name, "", 0), MV_OK);
    }
    assert_int_equal(backup_put_end(&b), MV_OK);
    refused(b.p, b.len);
    mv_buf_free(&b);
    /* names the writer refuses too */
    mv_buf_init(&b, MAXB);
    assert_int_not_equal(backup_put_entry(&b, "../x", "", 0), MV_OK);
    assert_int_not_equal(backup_put_entry(&b, "", "", 0), MV_OK);
    assert_int_not_equal(backup_put_entry(&b, "Config.json", "", 0), MV_OK);
    mv_buf_free(&b);
    refused(NULL, 0);
    refused("MVBACKUP", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_truncation_and_flip_refused),
        cmocka_unit_test(test_bad_entries_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
