/*
 * readbench.c: the read side of `make bench`, timed from inside a reader:
 * one capstats_read() of a session, a scan of a segment of many sessions,
 * a whole process (fork, exec, wait), a control-socket round trip, and the
 * time from a packet's arrival to its count in the segment. Each timing
 * prints "KEY<TAB>COUNT<TAB>MEDIAN<TAB>P99<TAB>MEAN" in nanoseconds;
 * `counts` prints every session's counters.
 * It only reads the daemon's segment; `scan` writes a private test segment.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capstats.h"
#include "writer.h"

#define READ_RUN	20	/* calls timed together for one sample */
#define READ_RUNS	200000	/* samples */
#define READ_BATCH	10000000 /* calls timed together, for the mean */
#define SCAN_SLOTS	1024
#define PROBE_TIMEOUT_NS (1000000000ull)
#define REPLY_LINE_MAX	4096

extern char **environ;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("readbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
nap(long ns)
{
	struct timespec ts = { 0, ns };

	nanosleep(&ts, NULL);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Print KEY's median, 99th percentile and mean of V[0..n) divided by DIV,
 * in ns; a negative MEAN is computed from V.
 */
static void
report_div(const char *key, uint64_t *v, size_t n, double mean, double div)
{
	size_t i;

	if (n == 0) {
		printf("%s\t0\t-\t-\t-\n", key);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	if (mean < 0) {
		mean = 0;
		for (i = 0; i < n; i++)
			mean += (double)v[i] / (double)n / div;
	}
	printf("%s\t%zu\t%.1f\t%.1f\t%.1f\n", key, n, (double)v[n / 2] / div,
	    (double)v[n * 99 / 100] / div, mean);
}

static void
report(const char *key, uint64_t *v, size_t n, double mean)
{
	report_div(key, v, n, mean, 1);
}

static uint64_t *
samples(size_t n)
{
	uint64_t *v;

	if ((v = calloc(n, sizeof(*v))) == NULL)
		die("out of memory");
	return v;
}

static struct capstats *
attach(const char *shm, const char *name, struct capstats_ref *ref)
{
	char err[CAPSTATS_ERRBUF_SIZE];
	struct capstats *h;
	int rc;

	if ((h = capstats_open(shm, &rc, err)) == NULL)
		die("%s: %s", shm, err);
	if (name != NULL && capstats_find(h, name, ref) != CAPSTATS_OK)
		die("%s: %s", name, capstats_errmsg(h));
	return h;
}

/* ---------------------------------------------------------------- read */

/*
 * capstats_read() of one session, as a reader polling it: timed in runs of
 * READ_RUN calls, because one call is shorter than the clock's own
 * resolution here; median and p99 are per call within a run, less the
 * cost of reading the clock (its median, measured the same way). The mean
 * is over READ_BATCH calls timed together.
 */
static int
cmd_read(int argc, char **argv)
{
	struct capstats_snapshot snap;
	struct capstats_ref ref;
	struct capstats *h;
	uint64_t *v, t0, t1, clk;
	size_t i, j;
	double mean;

	if (argc != 2)
		die("usage: readbench read SHM NAME");
	h = attach(argv[0], argv[1], &ref);
	v = samples(READ_RUNS);
	for (i = 0; i < READ_RUNS; i++) {
		t0 = now_ns();
		t1 = now_ns();
		v[i] = t1 - t0;
	}
	qsort(v, READ_RUNS, sizeof(*v), cmp_u64);
	clk = v[READ_RUNS / 2];
	t0 = now_ns();
	for (i = 0; i < READ_BATCH; i++)
		if (capstats_read(h, &ref, &snap) != CAPSTATS_OK)
			die("capstats_read: %s", capstats_errmsg(h));
	mean = (double)(now_ns() - t0) / READ_BATCH;
	for (i = 0; i < READ_RUNS; i++) {
		t0 = now_ns();
		for (j = 0; j < READ_RUN; j++)
			if (capstats_read(h, &ref, &snap) != CAPSTATS_OK)
				die("capstats_read: %s", capstats_errmsg(h));
		t1 = now_ns();
		v[i] = t1 - t0 > clk ? t1 - t0 - clk : 0;
	}
	report_div("read", v, READ_RUNS, mean, READ_RUN);
	free(v);
	capstats_close(h);
	return 0;
}

/* ---------------------------------------------------------------- scan */

/* A private segment of N running sessions, written as the daemon writes one. */
static struct shmw *
scan_segment(const char *shm, unsigned n)
{
	char err[256], name[CAPSTATS_NAME_MAX + 1], filter[64];
	struct shmw_counts c = { .state = CAPSTATS_RUNNING };
	struct shmw_desc d = {
		.state = CAPSTATS_RUNNING,
		.mode = CAPSTATS_MODE_PCAP,
		.iface = "eth0",
		.error = "",
	};
	struct shmw *w;
	unsigned i;
	int slot;

	if ((w = shmw_create(shm, 0, SCAN_SLOTS > n ? SCAN_SLOTS : n, 50000000u,
	    err, sizeof(err))) == NULL)
		die("%s: %s", shm, err);
	shmw_heartbeat(w, now_ns());
	for (i = 0; i < n; i++) {
		if ((slot = shmw_alloc(w, now_ns())) == -1)
			die("%s: no free slot for session %u", shm, i);
		snprintf(name, sizeof(name), "session-%04u", i);
		snprintf(filter, sizeof(filter), "tcp port %u or udp port %u",
		    1000 + i, 2000 + i);
		d.name = name;
		d.filter = filter;
		d.created_ns = d.modified_ns = (uint64_t)time(NULL) * 1000000000u;
		shmw_start(w, (uint32_t)slot, &d);
		c.packets = i * 1000u;
		c.bytes = i * 150000u;
		shmw_publish(w, (uint32_t)slot, &c);
	}
	return w;
}

/*
 * Walk every session with capstats_next() (the name, state and filter of
 * each, as `list` needs them); then the same walk also reading each one's
 * counters, as `metrics` does.
 */
static int
cmd_scan(int argc, char **argv)
{
	struct capstats_snapshot snap;
	struct capstats_info info;
	struct capstats_ref ref;
	struct capstats *h;
	struct shmw *w;
	unsigned n, iter, i, seen, withread;
	uint64_t *v, t0;
	int rc;

	if (argc != 3)
		die("usage: readbench scan SHM SESSIONS ITERATIONS");
	n = (unsigned)atoi(argv[1]);
	iter = (unsigned)atoi(argv[2]);
	w = scan_segment(argv[0], n);
	h = attach(argv[0], NULL, NULL);
	v = samples(iter);
	for (withread = 0; withread < 2; withread++) {
		for (i = 0; i < iter; i++) {
			t0 = now_ns();
			ref.slot = UINT32_MAX;
			seen = 0;
			while ((rc = capstats_next(h, &ref, &info)) == CAPSTATS_OK) {
				if (withread && capstats_read(h, &ref, &snap) != CAPSTATS_OK)
					die("capstats_read: %s", capstats_errmsg(h));
				seen++;
			}
			v[i] = now_ns() - t0;
			if (rc != CAPSTATS_E_NOSESSION || seen != n)
				die("scan saw %u of %u sessions: %s", seen, n,
				    capstats_errmsg(h));
		}
		report(withread ? "scan+read" : "scan", v, iter, -1);
	}
	free(v);
	capstats_close(h);
	shmw_destroy(w);
	return 0;
}

/* ---------------------------------------------------------------- exec */

/* A whole command, fork to exit, its output thrown away; it must exit 0. */
static int
cmd_exec(int argc, char **argv)
{
	posix_spawn_file_actions_t fa;
	unsigned iter, i;
	uint64_t *v, t0;
	int status;
	pid_t pid;

	if (argc < 3)
		die("usage: readbench exec KEY ITERATIONS COMMAND [ARG...]");
	iter = (unsigned)atoi(argv[1]);
	v = samples(iter);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
	    O_WRONLY, 0);
	for (i = 0; i < iter; i++) {
		t0 = now_ns();
		if ((errno = posix_spawn(&pid, argv[2], &fa, NULL, argv + 2,
		    environ)) != 0)
			die("%s: %s", argv[2], strerror(errno));
		if (waitpid(pid, &status, 0) != pid)
			die("waitpid: %s", strerror(errno));
		v[i] = now_ns() - t0;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			die("%s exited with status %d", argv[2], status);
	}
	report(argv[0], v, iter, -1);
	posix_spawn_file_actions_destroy(&fa);
	free(v);
	return 0;
}

/* ---------------------------------------------------------------- sock */

struct conn {
	int	fd;
	char	buf[REPLY_LINE_MAX];
	size_t	len;
};

static void
conn_open(struct conn *c, const char *path)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		die("%s: path too long", path);
	strcpy(sun.sun_path, path);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die("%s: %s", path, strerror(errno));
	c->len = 0;
}

/* Read one line into LINE (without its LF). */
static void
conn_line(struct conn *c, char *line, size_t size)
{
	char *lf;
	ssize_t n;
	size_t len;

	while ((lf = memchr(c->buf, '\n', c->len)) == NULL) {
		if (c->len == sizeof(c->buf))
			die("reply line too long");
		if ((n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len)) <= 0)
			die("daemon closed the connection");
		c->len += (size_t)n;
	}
	len = (size_t)(lf - c->buf);
	if (len >= size)
		die("reply line too long");
	memcpy(line, c->buf, len);
	line[len] = '\0';
	c->len -= len + 1;
	memmove(c->buf, lf + 1, c->len);
}

/* Send REQ, read the reply to its "ok"; an error reply ends the run. */
static void
conn_request(struct conn *c, const char *req, size_t reqlen)
{
	char line[REPLY_LINE_MAX];

	if (write(c->fd, req, reqlen) != (ssize_t)reqlen)
		die("write: %s", strerror(errno));
	for (;;) {
		conn_line(c, line, sizeof(line));
		if (strcmp(line, "ok") == 0)
			return;
		if (strncmp(line, "error", 5) == 0)
			die("%s", line);
	}
}

/*
 * `show NAME` on one open connection, as a program that keeps its
 * connection would see it; then connect, greeting, show and close each
 * time, as the client does without the cost of starting a process.
 */
static int
cmd_sock(int argc, char **argv)
{
	char req[CAPSTATS_NAME_MAX + 8], line[REPLY_LINE_MAX];
	unsigned iter, i;
	struct conn c;
	uint64_t *v, t0;
	int len;

	if (argc != 3)
		die("usage: readbench sock SOCKET NAME ITERATIONS");
	iter = (unsigned)atoi(argv[2]);
	len = snprintf(req, sizeof(req), "show %s\n", argv[1]);
	v = samples(iter);
	conn_open(&c, argv[0]);
	conn_line(&c, line, sizeof(line));
	for (i = 0; i < iter; i++) {
		t0 = now_ns();
		conn_request(&c, req, (size_t)len);
		v[i] = now_ns() - t0;
	}
	close(c.fd);
	report("show-rtt", v, iter, -1);
	for (i = 0; i < iter; i++) {
		t0 = now_ns();
		conn_open(&c, argv[0]);
		conn_line(&c, line, sizeof(line));
		conn_request(&c, req, (size_t)len);
		close(c.fd);
		v[i] = now_ns() - t0;
	}
	report("show-connect", v, iter, -1);
	free(v);
	return 0;
}

/* ---------------------------------------------------------------- fresh */

static int
udp_socket(uint16_t port, struct sockaddr_in *sin)
{
	int fd;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = htons(port);
	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	return fd;
}

/*
 * One UDP packet to 127.0.0.1:PORT, whose only counter is session NAME,
 * then read until its count moves. The freshness is the session's publish
 * time (the segment's update_ns, the same clock) less the time just before
 * the send: exact however late this reader itself wakes up. A receiving
 * socket takes the packets so that loopback answers none of them. Probes
 * are 1 to 4 ms apart, so they land at every phase of the ring's timer.
 */
static int
cmd_fresh(int argc, char **argv)
{
	struct sockaddr_in sin;
	struct capstats_snapshot snap;
	struct capstats_ref ref;
	struct capstats *h;
	unsigned iter, i, n = 0, lost = 0;
	uint64_t *v, t0, before;
	int rx, tx;
	char buf[64];

	if (argc != 5)
		die("usage: readbench fresh KEY SHM NAME PORT ITERATIONS");
	h = attach(argv[1], argv[2], &ref);
	iter = (unsigned)atoi(argv[4]);
	v = samples(iter);
	rx = udp_socket((uint16_t)atoi(argv[3]), &sin);
	if (bind(rx, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind 127.0.0.1:%s: %s", argv[3], strerror(errno));
	tx = udp_socket((uint16_t)atoi(argv[3]), &sin);
	srand((unsigned)getpid());
	memset(buf, 'p', sizeof(buf));
	for (i = 0; i < iter; i++) {
		nap(1000000L + rand() % 3000000L);
		if (capstats_read(h, &ref, &snap) != CAPSTATS_OK)
			die("capstats_read: %s", capstats_errmsg(h));
		before = snap.packets;
		t0 = now_ns();
		if (sendto(tx, buf, sizeof(buf), 0, (struct sockaddr *)&sin,
		    sizeof(sin)) == -1)
			die("sendto: %s", strerror(errno));
		do {
			if (capstats_read(h, &ref, &snap) != CAPSTATS_OK)
				die("capstats_read: %s", capstats_errmsg(h));
			if (snap.packets != before)
				break;
			nap(20000);
		} while (now_ns() - t0 < PROBE_TIMEOUT_NS);
		while (recv(rx, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			continue;
		if (snap.packets == before) {
			lost++;
			continue;
		}
		v[n++] = snap.update_ns > t0 ? snap.update_ns - t0 : 0;
	}
	report(argv[0], v, n, -1);
	if (lost > 0)
		printf("%s-lost\t%u\t-\t-\t-\n", argv[0], lost);
	free(v);
	capstats_close(h);
	return 0;
}

/* ---------------------------------------------------------------- counts */

/*
 * "NAME PACKETS DROPS" of every session, as published in the segment: the
 * bench checks the counts where readers read them, not the daemon's memory.
 */
static int
cmd_counts(int argc, char **argv)
{
	struct capstats_snapshot snap;
	struct capstats_info info;
	struct capstats_ref ref;
	struct capstats *h;
	int rc;

	if (argc != 1)
		die("usage: readbench counts SHM");
	h = attach(argv[0], NULL, NULL);
	ref.slot = UINT32_MAX;
	while ((rc = capstats_next(h, &ref, &info)) != CAPSTATS_E_NOSESSION) {
		if (rc != CAPSTATS_OK)
			die("capstats_next: %s", capstats_errmsg(h));
		if (capstats_read(h, &ref, &snap) != CAPSTATS_OK)
			die("capstats_read: %s", capstats_errmsg(h));
		printf("%s %" PRIu64 " %" PRIu64 "\n", info.name, snap.packets,
		    snap.drops);
	}
	capstats_close(h);
	return 0;
}

/* ---------------------------------------------------------------- wake */

/*
 * How late a 100 us sleep ends: what this machine adds to every wakeup,
 * the daemon's included. On a virtual machine an idle vCPU can take
 * milliseconds to run again, and freshness is read against that.
 */
static int
cmd_wake(int argc, char **argv)
{
	unsigned iter, i;
	uint64_t *v, t0;

	if (argc != 1)
		die("usage: readbench wake ITERATIONS");
	iter = (unsigned)atoi(argv[0]);
	v = samples(iter);
	for (i = 0; i < iter; i++) {
		t0 = now_ns();
		nap(100000);
		v[i] = now_ns() - t0 - 100000;
	}
	report("wake", v, iter, -1);
	free(v);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char	*name;
		int		(*fn)(int, char **);
	} modes[] = {
		{ "read", cmd_read },
		{ "scan", cmd_scan },
		{ "exec", cmd_exec },
		{ "sock", cmd_sock },
		{ "fresh", cmd_fresh },
		{ "wake", cmd_wake },
		{ "counts", cmd_counts },
	};
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; argc > 1 && i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(argv[1], modes[i].name) == 0)
			return modes[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "usage: readbench read|scan|exec|sock|fresh|wake|counts ...\n");
	return 2;
}
