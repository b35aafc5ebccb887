/* Logging to stderr. Peer-triggered events go through the rate-limited
 * variant so a hostile peer cannot flood the log. */
#ifndef MASQ_IO_LOG_H
#define MASQ_IO_LOG_H

#include <stddef.h>

enum { MASQ_LOG_ERR = 0, MASQ_LOG_WARN = 1, MASQ_LOG_INFO = 2, MASQ_LOG_DEBUG = 3 };

extern int masq_log_level;   /* messages above it are dropped; default INFO */
extern const char *masq_log_tag; /* "server", "forward", ... */

void masq_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* At most ~10 lines a second per call site; the rest are counted and the
 * count is reported with the next line that gets through. */
#define masq_log_rl(level, ...)                                \
  do {                                                         \
    static struct masq_ratelimit rl_;                          \
    if (masq_ratelimit_ok(&rl_)) masq_log(level, __VA_ARGS__); \
  } while (0)

/* Writes a one-line error into err (cap bytes, may be 0) for the caller
 * to report, and returns -1 so failure paths can `return masq_errf(...)`. */
int masq_errf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

struct masq_ratelimit {
  unsigned long long window;
  unsigned count;
  unsigned suppressed;
};
int masq_ratelimit_ok(struct masq_ratelimit *rl);

#endif
