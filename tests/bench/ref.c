/*
 * ref.c: the reference readers of `make bench`, the least work libpcap
 * needs to count N filters: N capture handles with the filter in the
 * kernel, a small snapshot, the daemon's ring size, one thread, and a
 * callback that adds. By default it reads the rings as the daemon does:
 * one poll loop, a ring of frames, and a handle whose packets come faster
 * than one per millisecond read every millisecond instead of woken per
 * packet, until its ring stays empty for a few reads. With -e it is the
 * plain epoll reader: every handle in one epoll set, pcap_dispatch() on
 * each that is ready; -b MS gives it a ring of blocks, each handed over
 * when full or MS ms after it opened.
 * It publishes nothing; on SIGTERM or SIGINT it reads the rings until
 * nothing more comes and prints "INDEX PACKETS BYTES DROPS" per filter.
 * It exits with an error if a capture socket fails.
 */
#include <sys/epoll.h>

#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "path.h"	/* POLL_NS and POLL_IDLE: read the rings as the daemon does */

/*
 * Counting needs no packet bytes, but after pcap_setfilter() libpcap runs
 * the filter again in user space, on the cut copy, over what the ring held
 * when the filter was set (at least its first frame or block): a snapshot
 * shorter than the deepest byte a filter reads loses those packets without
 * a drop being counted (32 bytes lost 7 of the first 30 packets for "udp
 * port 53"). 96, tcpdump's -s in the bench, covers every filter of
 * filters.txt (the deepest reads byte 67).
 */
#define SNAPLEN		96
#define FILTER_MAX	2048
#define QUIET_MS	50	/* at the end: read until nothing came for this long */
#define DRAIN_NS	(3000000000ull)	/* but no longer */
#define EVENTS_MAX	64	/* epoll events per wait */

struct counter {
	pcap_t		*p;
	uint64_t	 packets, bytes;
	uint64_t	 woken_ns;	/* the last wake-up for this handle */
	int		 fd;		/* its socket; pollfd's fd is -1 while polled */
	int		 idle;		/* empty reads in a row while polled */
};

static volatile sig_atomic_t quit;

static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void
count(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct counter *c = (struct counter *)user;

	(void)bytes;
	c->packets++;
	c->bytes += h->len;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void __attribute__((noreturn))
die(const char *what, const char *why)
{
	fprintf(stderr, "ref: %s: %s\n", what, why);
	exit(1);
}

/*
 * The ring: 0, a ring of frames, each readable as soon as it is queued
 * (immediate mode, as the daemon); else a ring of blocks, each handed over
 * when full or BLOCK_MS ms after it opened.
 */
static int block_ms;

static pcap_t *
open_one(const char *iface, int buffer_kb, const char *filter)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct bpf_program prog;
	pcap_t *p;

	if ((p = pcap_create(iface, ebuf)) == NULL)
		die(iface, ebuf);
	pcap_set_snaplen(p, SNAPLEN);
	if (block_ms > 0)
		pcap_set_timeout(p, block_ms);
	else
		pcap_set_immediate_mode(p, 1);
	pcap_set_buffer_size(p, buffer_kb * 1024);
	if (pcap_activate(p) < 0)
		die(iface, pcap_geterr(p));
	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == -1 ||
	    pcap_setfilter(p, &prog) == -1)
		die(filter, pcap_geterr(p));
	pcap_freecode(&prog);
	if (pcap_setnonblock(p, 1, ebuf) == -1)
		die(iface, ebuf);
	return p;
}

/* Read the first N filters of PATH (skipping # and empty lines) and open them. */
static int
open_all(const char *iface, int buffer_kb, const char *path, int n,
    struct counter *c, struct pollfd *pfd)
{
	char line[FILTER_MAX + 2];
	FILE *f;
	int i = 0;

	if ((f = fopen(path, "r")) == NULL)
		die(path, strerror(errno));
	while (i < n && fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		c[i].p = open_one(iface, buffer_kb, line);
		pfd[i].fd = c[i].fd = pcap_get_selectable_fd(c[i].p);
		pfd[i].events = POLLIN;
		i++;
	}
	fclose(f);
	return i;
}

/*
 * One wait and what follows it. A handle woken twice within POLL_NS leaves
 * the poll set (so the kernel has no waiter to call per packet; a failure
 * shows in its read) and is read every POLL_NS; POLL_IDLE reads in a row
 * that find nothing put it back. -1 when a socket failed.
 */
static int
loop_once(struct counter *c, struct pollfd *pfd, int n, const sigset_t *wait)
{
	static uint64_t next_round;
	struct timespec ts, *tmo = NULL;
	uint64_t now = now_ns();
	int i, got, polled = 0;

	for (i = 0; i < n; i++)
		polled += pfd[i].fd < 0;
	if (polled > 0) {
		if (next_round < now)
			next_round = now;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(next_round - now);
		tmo = &ts;
	}
	if (ppoll(pfd, (nfds_t)n, tmo, wait) == -1) {
		if (errno == EINTR)
			return 0;
		die("ppoll", strerror(errno));
	}
	now = now_ns();
	for (i = 0; i < n; i++) {
		if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL))
			return -1;
		if (pfd[i].fd < 0 && now >= next_round) {
			got = pcap_dispatch(c[i].p, -1, count, (u_char *)&c[i]);
			if (got < 0)
				return -1;
			if (got > 0)
				c[i].idle = 0;
			else if (++c[i].idle >= POLL_IDLE) {
				pfd[i].fd = c[i].fd;
				c[i].idle = 0;
			}
		} else if (pfd[i].revents & POLLIN) {
			got = pcap_dispatch(c[i].p, -1, count, (u_char *)&c[i]);
			if (got > 0 && now - c[i].woken_ns < POLL_NS)
				pfd[i].fd = -1;
			c[i].woken_ns = now;
		}
	}
	if (polled > 0 && now >= next_round)
		next_round = now + POLL_NS;
	return 0;
}

/*
 * The plain reader: one wait on the epoll set, then every ready handle is
 * read until its ring is empty. -1 when a socket failed.
 */
static int
epoll_once(int ep, struct counter *c, const sigset_t *wait)
{
	struct epoll_event ev[EVENTS_MAX];
	int i, got, k;

	if ((k = epoll_pwait(ep, ev, EVENTS_MAX, -1, wait)) == -1) {
		if (errno == EINTR)
			return 0;
		die("epoll_pwait", strerror(errno));
	}
	for (i = 0; i < k; i++) {
		if (ev[i].events & (EPOLLERR | EPOLLHUP))
			return -1;
		got = pcap_dispatch(c[ev[i].data.u32].p, -1, count,
		    (u_char *)&c[ev[i].data.u32]);
		if (got < 0)
			return -1;
	}
	return 0;
}

static int
epoll_setup(struct counter *c, int n)
{
	struct epoll_event ev;
	int ep, i;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1", strerror(errno));
	for (i = 0; i < n; i++) {
		ev.events = EPOLLIN;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev) == -1)
			die("epoll_ctl", strerror(errno));
	}
	return ep;
}

/*
 * At the end, read every ring until nothing more comes for QUIET_MS, and
 * for longer than a block waits to be handed over: what a ring holds then
 * is all the traffic sent. At most DRAIN_NS in all.
 */
static void
drain(struct counter *c, int n)
{
	struct timespec nap = { 0, 1000000 };
	uint64_t quiet = (QUIET_MS + 2 * (uint64_t)block_ms) * 1000000u;
	uint64_t now = now_ns(), end = now + DRAIN_NS, until = now + quiet;
	int i, got;

	while ((now = now_ns()) < until && now < end) {
		for (i = got = 0; i < n; i++)
			got |= pcap_dispatch(c[i].p, -1, count, (u_char *)&c[i]) > 0;
		if (got)
			until = now + quiet;
		else
			nanosleep(&nap, NULL);
	}
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: ref [-e] [-b MS] IFACE BUFFER_KB FILTERFILE N\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct pcap_stat st;
	struct counter *c;
	struct pollfd *pfd;
	sigset_t block, wait;
	int i, n, ch, ep = -1, use_epoll = 0;

	while ((ch = getopt(argc, argv, "eb:")) != -1) {
		switch (ch) {
		case 'e':
			use_epoll = 1;
			break;
		case 'b':
			if ((block_ms = atoi(optarg)) < 1)
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 4 || (n = atoi(argv[3])) < 1)
		usage();
	if (block_ms > 0 && !use_epoll)
		usage();	/* the tick's reads assume a ring of frames */
	if ((c = calloc((size_t)n, sizeof(*c))) == NULL ||
	    (pfd = calloc((size_t)n, sizeof(*pfd))) == NULL)
		die("calloc", strerror(errno));
	if ((n = open_all(argv[0], atoi(argv[1]), argv[2], n, c, pfd)) == 0)
		die(argv[2], "no filters");
	if (use_epoll)
		ep = epoll_setup(c, n);

	/* The signals arrive only inside the wait, so none is missed between checks. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait);
	printf("ready %d\n", n);
	fflush(stdout);

	while (!quit) {
		if ((use_epoll ? epoll_once(ep, c, &wait) :
		    loop_once(c, pfd, n, &wait)) == -1)
			die(argv[0], "capture socket failed");
	}
	drain(c, n);
	for (i = 0; i < n; i++) {
		if (pcap_stats(c[i].p, &st) == -1)
			st.ps_drop = 0;
		printf("%d %llu %llu %u\n", i, (unsigned long long)c[i].packets,
		    (unsigned long long)c[i].bytes, st.ps_drop);
	}
	fflush(stdout);
	for (i = 0; i < n; i++)
		pcap_close(c[i].p);
	return 0;
}
