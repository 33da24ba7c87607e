/*
 * log.c: where the daemon's messages go. Nothing else in the daemon
 * prints; nothing here allocates.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

static bool use_stderr = true;
static bool use_debug;

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

static void
vlog(int pri, const char *fmt, va_list ap, const char *err)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (use_stderr) {
		if (err != NULL)
			fprintf(stderr, "capstats: %s: %s\n", msg, err);
		else
			fprintf(stderr, "capstats: %s\n", msg);
	} else if (err != NULL)
		syslog(pri, "%s: %s", msg, err);
	else
		syslog(pri, "%s", msg);
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

void
fatal(const char *fmt, ...)
{
	const char *err = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap, err);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
