/* cli.h: what the verbs of the `mivault` command line share: parsed arguments, output in JSON
 * (default) or as a table (-o table), errors on stderr with a non-zero exit, and the admin's
 * authenticated control-plane client. */
#ifndef MV_CLI_CLI_H
#define MV_CLI_CLI_H

#include <jansson.h>

#include "common/buf.h"
#include "state/state.h"

#define CLI_MAX_OPTS 32

struct cli_opt {
    const char *name;   /* without the leading dashes */
    const char *value;  /* NULL for a flag */
};

struct cli {
    const char *verb;          /* "vm create" */
    struct cli_opt opts[CLI_MAX_OPTS];
    int nopts;
    const char *state_dir;     /* --state */
    int table;                 /* -o table */
    struct mv_paths paths;
    struct mv_config cfg;
};

/* Option value (last given) or NULL; flags test with cli_flag. */
const char *cli_get(const struct cli *c, const char *name);
int cli_flag(const struct cli *c, const char *name);
/* All values of a repeatable option, in order; returns the count. */
int cli_get_all(const struct cli *c, const char *name, const char **out, int max);
/* Fails with a clear message unless the option is there. */
MV_MUST_CHECK mv_rc cli_require(const struct cli *c, const char *name, const char **value);
/* Loads paths and config of the state dir (must be initialised). */
MV_MUST_CHECK mv_rc cli_load_state(struct cli *c);
/* runas.c: as root, the user the state dir belongs to (--user NAME, its owner, or mivault,
 * created if missing), with the dir handed to it; u->set 0 when not root. */
struct mv_user;
MV_MUST_CHECK mv_rc cli_state_user(const struct cli *c, const char *dir, struct mv_user *u);

/* The last recorded failure detail without its "(file:line, category)" tail, for people. */
const char *cli_detail(void);
/* Prints an error "mivault: <msg>" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints JSON (indented) or, with -o table, a table of the given columns (dotted paths into each
 * object; for an object a single row). Steals the reference. */
void cli_print(const struct cli *c, json_t *v, const char *const *columns);

/* ---- the admin's control-plane client (admin.c) ---- */
struct arm_client;
MV_MUST_CHECK mv_rc arm_client_new(const struct cli *c, struct arm_client **out);
void arm_client_free(struct arm_client *a);
const struct mv_tenant *arm_client_tenant(const struct arm_client *a);
/* path relative to the server (starts with '/'), api-version appended. body may be NULL.
 * On HTTP status >= 400 prints the Azure error and returns MV_ERR_BAD_REQUEST (or the category
 * of the status); *out gets the parsed JSON body (NULL for empty). */
MV_MUST_CHECK mv_rc arm_call(struct arm_client *a, const char *method, const char *path,
                             json_t *body, json_t **out, long *status);
/* The resource id prefix "/subscriptions/<s>/resourceGroups/<rg>/providers/". */
MV_MUST_CHECK mv_rc arm_provider_path(struct arm_client *a, const char *type, const char *name,
                                      char *out, size_t len);

/* Config for a new state from --server-port, --agent-port, --vault-suffix, --threads; 0 or an
 * error already printed. */
int cli_config_from_flags(const struct cli *c, struct mv_config *cfg);
/* --listen ADDR:PORT of `server` and `up` (NULL if absent); 0 or an error already printed. */
int cli_listen_flag(const struct cli *c, const char **listen);
/* --trust-ca FILE (repeatable) of `server` and `up`: extra CAs for reaching external OIDC
 * issuers (workload identity federation); 0 or an error already printed. */
int cli_trust_ca_flags(const struct cli *c);

/* --metrics-listen ADDR:PORT (metrics.c): the flag (NULL if absent; 0 or an error printed), and
 * the listener of GET /metrics and GET /healthz (db: the store /healthz probes, NULL for the
 * agent's). Started before the process drops root, so a privileged port works too. */
struct cli_metrics {
    struct http_server *srv;
    struct metrics_arg {
        char db[PATH_MAX];
    } arg;
};
int cli_metrics_flag(const struct cli *c, const char **listen);
MV_MUST_CHECK mv_rc cli_metrics_start(const char *listen, const char *db, struct cli_metrics **out);
void cli_metrics_stop(struct cli_metrics *m);

/* ---- a workload's vault session (workload.c): credential from the agent, vault client ---- */
struct mv_credential;
struct mv_secret_client;
struct cli_kv {
    struct mv_credential *cred;
    struct mv_secret_client *sc;
    char url[MV_MAX_URL];     /* the vault's URL (--vault-name) */
    const char *ca;           /* CA bundle to trust */
};
/* --vault-name, state, credential, secret client; 0 or the exit status (error printed). */
int cli_kv_open(struct cli *c, struct cli_kv *s);
void cli_kv_close(struct cli_kv *s);
/* Prints libmivault's last error for status st; returns 1. */
int cli_kv_report(int st);
/* Parses the vault's JSON text (takes and frees it), adds "name" from id/kid, prints it. */
int cli_kv_print(const struct cli *c, char *text, const char *const *cols);

/* Verbs: each returns the process exit status. */
typedef int (*cli_verb_fn)(struct cli *c);
int verb_init(struct cli *c);
int verb_server(struct cli *c);
int verb_agent(struct cli *c);
int verb_up(struct cli *c);
int verb_demo(struct cli *c);
int verb_vm_create(struct cli *c);
int verb_vm_show(struct cli *c);
int verb_vm_list(struct cli *c);
int verb_vm_delete(struct cli *c);
int verb_vm_join_token(struct cli *c);
int verb_vm_identity_assign(struct cli *c);
int verb_vm_identity_remove(struct cli *c);
int verb_vm_identity_bind(struct cli *c);
int verb_vm_identity_unbind(struct cli *c);
int verb_vm_identity_bindings(struct cli *c);
int verb_identity_create(struct cli *c);
int verb_identity_show(struct cli *c);
int verb_identity_list(struct cli *c);
int verb_identity_delete(struct cli *c);
int verb_keyvault_create(struct cli *c);
int verb_keyvault_show(struct cli *c);
int verb_keyvault_list(struct cli *c);
int verb_keyvault_delete(struct cli *c);
int verb_role_assignment_create(struct cli *c);
int verb_role_assignment_list(struct cli *c);
int verb_role_assignment_delete(struct cli *c);
int verb_role_definition_list(struct cli *c);
int verb_token_get(struct cli *c);
int verb_secret_set(struct cli *c);
int verb_secret_show(struct cli *c);
int verb_secret_list(struct cli *c);
int verb_secret_delete(struct cli *c);
int verb_secret_recover(struct cli *c);
int verb_secret_purge(struct cli *c);
int verb_secret_backup(struct cli *c);
int verb_secret_restore(struct cli *c);
int verb_audit_verify(struct cli *c);
int verb_store_migrate(struct cli *c);
/* opscmd.c, backupcmd.c: keys, backup and restore (docs/operations.md) */
int verb_authority_key_list(struct cli *c);
int verb_authority_key_rotate(struct cli *c);
int verb_authority_key_retire(struct cli *c);
int verb_master_key_rotate(struct cli *c);
int verb_backup(struct cli *c);
int verb_restore(struct cli *c);
int verb_token_mint(struct cli *c);
/* keyscmd.c: keyvault key ... (docs/cli.md), and what certscmd.c shares with it. Each returns
 * 0 or the exit status, the error printed. */
/* One request on the session's engine; *json: the reply text (NULL when empty). */
int cli_kv_request(struct cli_kv *s, const char *method, const char *path, const char *body, long expect,
                   char **json);
/* GET path and every nextLink; prints the joined items. */
int cli_kv_list(struct cli_kv *s, const char *path, const char *const *cols, const struct cli *c);
/* --name (and --version when given) checked as Key Vault names. */
int cli_kv_need_name(const struct cli *c, const char **name);
/* Sends body (stolen, may be NULL) and prints the reply. */
int cli_kv_send(struct cli *c, struct cli_kv *s, const char *method, const char *path, json_t *body,
                long expect, const char *const *cols);
/* --name N [--version VER]: one request on fmt (%s name, %s version), printed. */
int cli_kv_named(struct cli *c, const char *method, const char *fmt, long expect, const char *const *cols,
                 int with_version);
/* A paged list on fmt (%s: --name when with_name, else ""). */
int cli_kv_listing(struct cli *c, const char *fmt, const char *const *cols, int with_name);
int cli_parse_time(const char *s, long long *out);
int cli_attrs_tags(const struct cli *c, json_t *body, int with_enabled);
int verb_key_create(struct cli *c);
int verb_key_show(struct cli *c);
int verb_key_list(struct cli *c);
int verb_key_list_versions(struct cli *c);
int verb_key_list_deleted(struct cli *c);
int verb_key_show_deleted(struct cli *c);
int verb_key_delete(struct cli *c);
int verb_key_recover(struct cli *c);
int verb_key_purge(struct cli *c);
int verb_key_rotate(struct cli *c);
int verb_key_rotation_policy_show(struct cli *c);
int verb_key_backup(struct cli *c);
int verb_key_restore(struct cli *c);
int verb_key_sign(struct cli *c);
int verb_key_verify(struct cli *c);
int verb_key_encrypt(struct cli *c);
int verb_key_decrypt(struct cli *c);
int verb_key_wrap(struct cli *c);
int verb_key_unwrap(struct cli *c);
int verb_key_set_attributes(struct cli *c);
int verb_key_import(struct cli *c);
/* certscmd.c: keyvault certificate ... (docs/cli.md) */
int verb_cert_default_policy(struct cli *c);
int verb_cert_create(struct cli *c);
int verb_cert_show(struct cli *c);
int verb_cert_list(struct cli *c);
int verb_cert_list_versions(struct cli *c);
int verb_cert_list_deleted(struct cli *c);
int verb_cert_show_deleted(struct cli *c);
int verb_cert_delete(struct cli *c);
int verb_cert_recover(struct cli *c);
int verb_cert_purge(struct cli *c);
int verb_cert_import(struct cli *c);
int verb_cert_download(struct cli *c);
int verb_cert_pending_show(struct cli *c);
int verb_cert_pending_delete(struct cli *c);
int verb_cert_pending_merge(struct cli *c);
int verb_cert_set_attributes(struct cli *c);
int verb_cert_policy_show(struct cli *c);
int verb_cert_policy_update(struct cli *c);
int verb_sp_create(struct cli *c);
int verb_sp_list(struct cli *c);
int verb_sp_show(struct cli *c);
int verb_sp_delete(struct cli *c);
int verb_sp_credential_reset(struct cli *c);
int verb_fic_create(struct cli *c);
int verb_fic_list(struct cli *c);
int verb_fic_show(struct cli *c);
int verb_fic_delete(struct cli *c);

#endif
