/*
 * log.c: where the daemon's messages go. Nothing else in the daemon
 * prints; nothing here allocates. A message repeated within a window is
 * counted instead of written again, as syslogd does, so that a fault
 * that recurs every few milliseconds cannot flood the log.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

#define REPEAT_WINDOW_NS	(10ull * 1000000000u)

static bool use_stderr = true;
static bool use_debug;

/* The last message written, and how often it came again unwritten. */
static struct {
	char		 text[1100];
	int		 pri;
	uint64_t	 at;		/* monotonic ns: when it was written */
	unsigned	 repeats;
} last;

void
log_init(bool to_stderr, bool debug)
{
	use_stderr = to_stderr;
	use_debug = debug;
	if (!to_stderr)
		openlog("capstats", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void
log_to_syslog(void)
{
	openlog("capstats", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_stderr = false;
}

static uint64_t
log_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
log_write(int pri, const char *text)
{
	if (use_stderr)
		fprintf(stderr, "capstats: %s\n", text);
	else
		syslog(pri, "%s", text);
}

/* Say how often the last message came again, if it did. */
static void
log_repeats(void)
{
	char text[64];

	if (last.repeats == 0)
		return;
	snprintf(text, sizeof(text), "last message repeated %u time%s",
	    last.repeats, last.repeats == 1 ? "" : "s");
	last.repeats = 0;
	log_write(last.pri, text);
}

void
log_tick(uint64_t now)
{
	if (last.repeats > 0 && now >= last.at + REPEAT_WINDOW_NS) {
		log_repeats();
		last.text[0] = '\0';	/* the next one is written in full */
	}
}

static void
vlog(int pri, const char *fmt, va_list ap, const char *err)
{
	char msg[1024], text[sizeof(last.text)];
	uint64_t now = log_now();

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (err != NULL)
		snprintf(text, sizeof(text), "%s: %s", msg, err);
	else
		snprintf(text, sizeof(text), "%s", msg);
	if (pri == last.pri && now < last.at + REPEAT_WINDOW_NS &&
	    strcmp(text, last.text) == 0) {
		last.repeats++;
		return;
	}
	log_repeats();
	log_write(pri, text);
	memcpy(last.text, text, sizeof(text));
	last.pri = pri;
	last.at = now;
}

void
log_warn(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap, err);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!use_debug)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

static void vfatal(const char *, va_list, const char *)
    __attribute__((noreturn));

/* The last words are never counted away. */
static void
vfatal(const char *fmt, va_list ap, const char *err)
{
	last.text[0] = '\0';
	vlog(LOG_ERR, fmt, ap, err);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vfatal(fmt, ap, err);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfatal(fmt, ap, NULL);
}
