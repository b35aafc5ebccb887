#include "io/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "io/loop.h"

int masq_log_level = MASQ_LOG_INFO;
const char *masq_log_tag = "masq";

static const char *const level_names[] = {"error", "warning", "info", "debug"};

void masq_log(int level, const char *fmt, ...) {
  if (level > masq_log_level) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  /* One write per line so lines from concurrent processes do not mix. */
  fprintf(stderr, "masq %s: %s: %s\n", masq_log_tag, level_names[level], line);
}

int masq_ratelimit_ok(struct masq_ratelimit *rl) {
  unsigned long long sec = masq_now() / 1000000000ull;
  if (sec != rl->window) {
    if (rl->suppressed)
      masq_log(MASQ_LOG_WARN, "%u similar messages suppressed", rl->suppressed);
    rl->window = sec;
    rl->count = 0;
    rl->suppressed = 0;
  }
  if (rl->count++ < 10) return 1;
  rl->suppressed++;
  return 0;
}

int masq_errf(char *err, size_t cap, const char *fmt, ...) {
  if (cap > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
  }
  return -1;
}
