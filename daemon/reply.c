/*
 * reply.c: reply lines, with every value cleaned of TAB, LF and other
 * control bytes, in a buffer that never passes what one client may have
 * queued; and the table of open replies that a late answer finds its own
 * in. No socket I/O here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

/* What one client may have queued: unsent replies below the budget, and one more. */
#define REPLY_CAP_MAX	(CTL_REPLY_BUDGET + CTL_REPLY_MAX)

static LIST_HEAD(, reply) open_replies = LIST_HEAD_INITIALIZER(open_replies);
static uint64_t last_id;

void
reply_open(struct reply *r, void (*answered)(struct reply *))
{
	memset(r, 0, sizeof(*r));
	r->id = ++last_id;
	r->answered = answered;
	LIST_INSERT_HEAD(&open_replies, r, entry);
}

void
reply_close(struct reply *r)
{
	LIST_REMOVE(r, entry);
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = 0;
}

static void
rep_grow(struct reply *r, size_t need)
{
	size_t cap;
	char *p;

	if (r->failed || r->len + need <= r->cap)
		return;
	for (cap = r->cap ? r->cap : 256; cap < r->len + need; cap *= 2)
		;
	if (cap > REPLY_CAP_MAX)
		cap = REPLY_CAP_MAX;
	if (r->len + need > cap || (p = realloc(r->buf, cap)) == NULL) {
		r->failed = true;
		return;
	}
	r->buf = p;
	r->cap = cap;
}

static void
rep_put(struct reply *r, const char *s, size_t n)
{
	rep_grow(r, n);
	if (r->failed)
		return;
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

/* Values never carry TAB, LF or other control bytes onto the wire. */
static void
rep_clean(struct reply *r, const char *s)
{
	size_t start = r->len, i;

	rep_put(r, s, strlen(s));
	if (r->failed)
		return;
	for (i = start; i < r->len; i++)
		if ((unsigned char)r->buf[i] < 0x20 || r->buf[i] == 0x7f)
			r->buf[i] = ' ';
}

void
rep_eol(struct reply *r)
{
	if (r->len > 0 && r->buf[r->len - 1] != '\n')
		rep_put(r, "\n", 1);
}

void
rep_line(struct reply *r, const char *word)
{
	rep_eol(r);
	rep_put(r, word, strlen(word));
}

void
rep_row(struct reply *r)
{
	rep_line(r, "row");
}

void
rep_str(struct reply *r, const char *key, const char *val)
{
	rep_put(r, "\t", 1);
	rep_put(r, key, strlen(key));
	rep_put(r, "=", 1);
	rep_clean(r, val);
}

void
rep_u64(struct reply *r, const char *key, uint64_t val)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)val);
	rep_str(r, key, num);
}

void
rep_ok(struct reply *r)
{
	rep_line(r, "ok");
	rep_eol(r);
}

enum ctl_status
rep_err(struct reply *r, enum ctl_status st, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rep_line(r, "error\t");
	rep_clean(r, ctl_status_word(st));
	rep_put(r, "\t", 1);
	rep_clean(r, msg);
	rep_put(r, "\n", 1);
	return st;
}

struct reply *
reply_resume(uint64_t id)
{
	struct reply *r;

	LIST_FOREACH(r, &open_replies, entry)
		if (r->id == id)
			return r->later ? r : NULL;
	return NULL;
}

void
reply_resumed(uint64_t id)
{
	struct reply *r;

	if ((r = reply_resume(id)) == NULL)
		return;
	r->later = false;
	r->answered(r);
}
