/* result.h: the one error type of mivault, and the guard macros.
 *
 * Every fallible function returns mv_rc and is marked MV_MUST_CHECK. The categories are what a
 * client may learn (each maps to one HTTP status and one Azure error body, see http/reply.h); the
 * detail of *what* failed goes to the log through mv_fail(), never into a reply.
 *
 * Cleanup idiom (one for the whole code base): a single `out:` label, the result threaded through
 * `rc`, and the guards below jumping there:
 *
 *     mv_rc rc = MV_OK;
 *     CHECK(step_one());
 *     ENSURE(len < MAX, MV_ERR_LIMIT);
 *   out:
 *     free(tmp);
 *     return rc;
 */
#ifndef MV_COMMON_RESULT_H
#define MV_COMMON_RESULT_H

#define MV_MUST_CHECK __attribute__((warn_unused_result))

typedef enum mv_rc {
    MV_OK = 0,
    MV_ERR_BAD_REQUEST,     /* 400: malformed or invalid input */
    MV_ERR_UNAUTHENTICATED, /* 401: no/invalid credential */
    MV_ERR_FORBIDDEN,       /* 403: authenticated, not allowed */
    MV_ERR_NOT_FOUND,       /* 404 */
    MV_ERR_CONFLICT,        /* 409 */
    MV_ERR_LIMIT,           /* 413: over a configured limit */
    MV_ERR_THROTTLED,       /* 429 */
    MV_ERR_UNAVAILABLE,     /* 503: a dependency is down */
    MV_ERR_INTERNAL,        /* 500 */
} mv_rc;

/* Records where an error was first raised (file:line) and a detail for the log. Thread-local. */
void mv_fail_at(const char *file, int line, mv_rc rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The detail recorded by the last mv_fail on this thread ("" if none). */
const char *mv_last_detail(void);
const char *mv_rc_name(mv_rc rc);

#define mv_fail(rc_, ...) mv_fail_at(__FILE__, __LINE__, (rc_), __VA_ARGS__)

/* Run x; on error, keep it in rc and jump to out. */
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        rc = (x);                                                                                  \
        if (rc != MV_OK)                                                                           \
            goto out;                                                                              \
    } while (0)

/* If cond is false, set rc = err (recording file:line) and jump to out. */
#define ENSURE(cond, err)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            rc = (err);                                                                            \
            mv_fail_at(__FILE__, __LINE__, rc, "%s", #cond);                                       \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* Like ENSURE with a log detail. */
#define ENSURE_MSG(cond, err, ...)                                                                 \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            rc = (err);                                                                            \
            mv_fail_at(__FILE__, __LINE__, rc, __VA_ARGS__);                                       \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#endif
