/*
 * output.c: how the client prints: aligned tables and numbers for people,
 * JSON for programs. Nothing here talks to the daemon or the segment.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"

/* 1234567 as "1,234,567", or with -H as "1.23M". */
void
fmt_count(char *buf, size_t len, uint64_t v, int units)
{
	static const char si[] = " kMGTPE";
	char digits[24];
	size_t n, i, o;
	double d = (double)v;
	int u = 0;

	if (units) {
		while (d >= 1000 && u < 6) {
			d /= 1000;
			u++;
		}
		if (u == 0)
			snprintf(buf, len, "%" PRIu64, v);
		else
			snprintf(buf, len, "%.*f%c", d < 10 ? 2 : d < 100 ? 1 : 0,
			    d, si[u]);
		return;
	}
	n = (size_t)snprintf(digits, sizeof(digits), "%" PRIu64, v);
	for (i = 0, o = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

void
fmt_rate(char *buf, size_t len, double v, int units)
{
	if (v < 0)
		snprintf(buf, len, "-");
	else
		fmt_count(buf, len, (uint64_t)(v + 0.5), units);
}

/* Local time with nanoseconds, or "never". */
void
fmt_time(char *buf, size_t len, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	char day[40];

	if (ns == 0 || localtime_r(&t, &tm) == NULL) {
		snprintf(buf, len, "never");
		return;
	}
	strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, len, "%s.%09llu", day,
	    (unsigned long long)(ns % 1000000000u));
}

void
json_str(FILE *f, const char *s)
{
	const unsigned char *p;

	putc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			putc(*p, f);
	}
	putc('"', f);
}

/* Keys whose values are numbers; the rest are strings. */
static int
numeric(const char *key)
{
	static const char *const keys[] = {
		"packets", "bytes", "drops", "if_drops", "created", "modified",
		"last_packet", "slot", "session_id", NULL
	};
	int i;

	for (i = 0; keys[i] != NULL; i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

void
json_row(FILE *f, const struct row *r)
{
	int i;

	putc('{', f);
	for (i = 0; i < r->n; i++) {
		if (i > 0)
			fputs(", ", f);
		json_str(f, r->key[i]);
		fputs(": ", f);
		if (numeric(r->key[i]) && strcmp(r->key[i], "last_packet") == 0 &&
		    strcmp(r->val[i], "0") == 0)
			fputs("null", f);
		else if (numeric(r->key[i]))
			fprintf(f, "%llu", strtoull(r->val[i], NULL, 10));
		else
			json_str(f, r->val[i]);
	}
	putc('}', f);
}

/* A reply that only says it was done: nothing, or with -j its row or ok. */
void
print_ack(const struct options *o, const struct rows *rs)
{
	if (!o->json)
		return;
	if (rs->n > 0)
		json_row(stdout, &rs->v[0]);
	else
		fputs("{\"ok\": true}", stdout);
	putchar('\n');
}

#define LIST_COLS 7

void
print_list(const struct options *o, const struct rows *rs)
{
	static const char *const head[LIST_COLS] = {
		"SESSION", "INTERFACE", "STATE", "PACKETS", "BYTES", "DROPS", "FILTER"
	};
	static const char *const keys[LIST_COLS] = {
		"session", "interface", "state", "packets", "bytes", "drops", "filter"
	};
	char (*cell)[LIST_COLS][32];
	int w[LIST_COLS], c, len;
	const char *v;
	size_t i;

	if (o->json) {
		putchar('[');
		for (i = 0; i < rs->n; i++) {
			fputs(i ? ",\n " : "", stdout);
			json_row(stdout, &rs->v[i]);
		}
		puts("]");
		return;
	}
	if ((cell = calloc(rs->n + 1, sizeof(*cell))) == NULL)
		return;
	for (c = 0; c < LIST_COLS; c++)
		w[c] = (int)strlen(head[c]);
	for (i = 0; i < rs->n; i++)
		for (c = 0; c < LIST_COLS - 1; c++) {
			v = row_get(&rs->v[i], keys[c]);
			if (c >= 3)
				fmt_count(cell[i][c], sizeof(cell[i][c]),
				    row_u64(&rs->v[i], keys[c]), o->units);
			else
				snprintf(cell[i][c], sizeof(cell[i][c]), "%s",
				    v ? v : "-");
			if ((len = (int)strlen(cell[i][c])) > w[c])
				w[c] = len;
		}
	for (c = 0; c < LIST_COLS - 1; c++)
		printf(c >= 3 ? "%*s  " : "%-*s  ", w[c], head[c]);
	printf("%s\n", head[LIST_COLS - 1]);
	for (i = 0; i < rs->n; i++) {
		for (c = 0; c < LIST_COLS - 1; c++)
			printf(c >= 3 ? "%*s  " : "%-*s  ", w[c], cell[i][c]);
		v = row_get(&rs->v[i], "filter");
		printf("%s\n", v && *v ? v : "(all packets)");
	}
	free(cell);
}

void
print_show(const struct options *o, const struct rows *rs)
{
	static const char *const counts[] = {
		"packets", "bytes", "drops", "if_drops", NULL
	};
	const struct row *r;
	char buf[64];
	const char *v;
	int i;

	if (rs->n == 0) {
		print_ack(o, rs);
		return;
	}
	r = &rs->v[0];
	if (o->json) {
		json_row(stdout, r);
		putchar('\n');
		return;
	}
	printf("%-12s %s\n", "session", row_get(r, "session"));
	printf("%-12s %s\n", "interface", row_get(r, "interface"));
	v = row_get(r, "filter");
	printf("%-12s %s\n", "filter", v && *v ? v : "(all packets)");
	printf("%-12s %s\n", "state", row_get(r, "state"));
	if ((v = row_get(r, "error")) != NULL)
		printf("%-12s %s\n", "error", v);
	printf("%-12s %s\n", "mode", row_get(r, "mode"));
	fmt_time(buf, sizeof(buf), row_u64(r, "created"));
	printf("%-12s %s\n", "created", buf);
	fmt_time(buf, sizeof(buf), row_u64(r, "modified"));
	printf("%-12s %s\n", "modified", buf);
	for (i = 0; counts[i] != NULL; i++) {
		fmt_count(buf, sizeof(buf), row_u64(r, counts[i]), o->units);
		printf("%-12s %s\n", counts[i], buf);
	}
	fmt_time(buf, sizeof(buf), row_u64(r, "last_packet"));
	printf("%-12s %s\n", "last_packet", buf);
}
