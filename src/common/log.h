/* log.h: leveled log lines on stderr. Never pass a secret or a token here (DESIGN §8). */
#ifndef MV_COMMON_LOG_H
#define MV_COMMON_LOG_H

enum mv_log_level { MV_LOG_DEBUG, MV_LOG_INFO, MV_LOG_WARN, MV_LOG_ERROR };

void mv_log_set_level(enum mv_log_level lvl);
/* 1: each line is a JSON object {"time","level","pid","msg"} (--log-format json); 0: text. */
void mv_log_set_json(int on);
int mv_log_json(void);
void mv_log(enum mv_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_DEBUG(...) mv_log(MV_LOG_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) mv_log(MV_LOG_INFO, __VA_ARGS__)
#define LOG_WARN(...) mv_log(MV_LOG_WARN, __VA_ARGS__)
#define LOG_ERROR(...) mv_log(MV_LOG_ERROR, __VA_ARGS__)

#endif
