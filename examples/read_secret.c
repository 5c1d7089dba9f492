/* read_secret.c: read one Key Vault secret with libmivault, as a workload on a VM does.
 *
 * The token comes from the machine's IMDS endpoint (no credential in the program); the vault is
 * found from its URL. Build with pkg-config:
 *
 *   cc -o read_secret read_secret.c $(pkg-config --cflags --libs mivault)
 *
 * Run: read_secret VAULT_URL NAME [CA_FILE]. The IMDS endpoint is $AZURE_POD_IDENTITY_AUTHORITY_HOST
 * when set (mivault's env.sh sets it), else http://169.254.169.254. Prints the secret's value. */
#include <mivault/mivault.h>
#include <stdio.h>
#include <string.h>

/* The string value of "value" in the SecretBundle, unescaped into out (enough for a demo: the
 * JSON escapes \" \\ \/ \n \t; others are copied as they are). */
static int bundle_value(const char *json, char *out, size_t len)
{
    const char *p = strstr(json, "\"value\":\"");
    if (!p)
        return -1;
    p += strlen("\"value\":\"");
    size_t n = 0;
    for (; *p && *p != '"' && n + 1 < len; p++) {
        char c = *p;
        if (c == '\\' && p[1]) {
            c = *++p;
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return *p == '"' ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s VAULT_URL NAME [CA_FILE]\n", argv[0]);
        return 2;
    }
    struct mv_credential *cred = NULL;
    struct mv_secret_client *sc = NULL;
    char *json = NULL, value[4096];
    int status = 1;
    int st = mv_credential_new(NULL, NULL, NULL, NULL, &cred);
    if (st == MV_STATUS_OK)
        st = mv_secret_client_new(argv[1], cred, argc > 3 ? argv[3] : NULL, 0, &sc);
    if (st == MV_STATUS_OK)
        st = mv_secret_get(sc, argv[2], NULL, &json);
    if (st != MV_STATUS_OK) {
        fprintf(stderr, "read_secret: %s: %s\n", mv_status_name(st), mv_last_error());
    } else if (bundle_value(json, value, sizeof value) != 0) {
        fprintf(stderr, "read_secret: no value in the reply\n");
    } else {
        printf("%s\n", value);
        status = 0;
    }
    mv_free(json);
    mv_secret_client_free(sc);
    mv_credential_free(cred);
    return status;
}
