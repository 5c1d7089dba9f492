/* server_id.c: STATE/server.id, this server's stable id (a UUID): the "writer" of its audit
 * records and of its checkpoints in the store (docs/audit.md). Made once, by init or the first
 * start, and never changed: a server's chain is known by it across restarts. Two state dirs
 * must never share one (a copied state dir must get its own: delete server.id in the copy
 * before its first start). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "state/state.h"

static mv_rc read_id(const char *path, char out[ST_ID])
{
    mv_rc rc = MV_OK;
    char *text = NULL;
    size_t len = 0;
    CHECK(mv_read_file(path, 64, &text, &len));
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        text[--len] = '\0';
    ENSURE_MSG(mv_is_uuid(text), MV_ERR_INTERNAL, "%s does not hold a server id (a UUID)", path);
    memcpy(out, text, len + 1);
out:
    free(text);
    return rc;
}

mv_rc state_server_id(const struct mv_paths *p, int create, char out[ST_ID])
{
    mv_rc rc = MV_OK;
    char id[ST_ID], line[ST_ID + 1];
    int fd = -1;
    if (mv_file_exists(p->server_id) || !create)
        return read_id(p->server_id, out);
    CHECK(mv_uuid(id));
    /* O_EXCL: of two processes starting at once, one makes it and both use that one. */
    fd = open(p->server_id, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST)
        return read_id(p->server_id, out);
    ENSURE_MSG(fd >= 0, MV_ERR_INTERNAL, "create %s: %s", p->server_id, strerror(errno));
    size_t n = strlen(id);
    memcpy(line, id, n);
    line[n++] = '\n';
    ENSURE_MSG(write(fd, line, n) == (ssize_t)n && fsync(fd) == 0, MV_ERR_INTERNAL, "write %s: %s",
               p->server_id, strerror(errno));
    memcpy(out, id, sizeof id);
    LOG_INFO("server id %s (%s)", id, p->server_id);
out:
    if (fd >= 0)
        close(fd);
    return rc;
}
