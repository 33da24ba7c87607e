/*
 * log.h: the daemon's messages, to stderr in the foreground and to syslog
 * once detached. log_warn appends strerror(errno); log_warnx does not.
 * A message identical to the last one within 10 s is counted, not
 * written; the count is written before the next other message, or by
 * log_tick() once the 10 s are over.
 */
#ifndef CAPSTATS_LOG_H
#define CAPSTATS_LOG_H

#include <stdbool.h>
#include <stdint.h>

void log_init(bool to_stderr, bool debug);
void log_to_syslog(void);
void log_tick(uint64_t now);	/* monotonic ns, as now_mono() */
void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
