/*
 * client.h: what the client's modules share. The client asks the daemon
 * over the socket for control and descriptions, and reads counters from
 * the segment; it never does both for one number.
 */
#ifndef CAPSTATS_CLIENT_H
#define CAPSTATS_CLIENT_H

#include <stdint.h>
#include <stdio.h>

#include "daemon.h"
#include "proto.h"

/* Exit statuses. */
#define EXIT_REFUSED	1	/* the daemon refused, or is not there */
#define EXIT_USAGE	2

#define ROW_FIELDS_MAX	32

/* One reply row: key=value fields pointing into the reply's buffer. */
struct row {
	int		 n;
	const char	*key[ROW_FIELDS_MAX];
	const char	*val[ROW_FIELDS_MAX];
};

struct rows {
	size_t		 n;
	struct row	*v;
	char		*buf;	/* every row's text */
};

/*
 * Send REQUEST to the daemon and collect the reply's rows. Returns 0, or
 * an exit status after printing why on stderr.
 */
int req_run(const struct options *, const char *request, struct rows *);
void rows_free(struct rows *);
const char *row_get(const struct row *, const char *key);
uint64_t row_u64(const struct row *, const char *key);

/* output.c */
void fmt_count(char *buf, size_t len, uint64_t v, int units);
void fmt_rate(char *buf, size_t len, double v, int units);
void fmt_time(char *buf, size_t len, uint64_t realtime_ns);
void json_str(FILE *, const char *);
void json_row(FILE *, const struct row *);
/* The printers of the daemon's replies, named in proto.h's command table. */
void print_ack(const struct options *, const struct rows *);
void print_list(const struct options *, const struct rows *);
void print_show(const struct options *, const struct rows *);

/* local.c: commands answered from the segment alone. */
int local_poll(const struct options *, const char *name);
int local_watch(const struct options *, const char *name, double seconds,
    long count);
int local_metrics(const struct options *);

#endif
