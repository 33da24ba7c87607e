/*
 * offline.c: the reference reader for many filters in `make bench`, the
 * design users pick when the filters are many: ONE libpcap capture of
 * everything on the interface, and every filter compiled with
 * pcap_compile and run in user space with pcap_offline_filter on every
 * packet, counting per filter. It publishes nothing; on SIGTERM or SIGINT
 * it drains the ring and prints "INDEX PACKETS BYTES DROPS" per filter,
 * DROPS being the one capture's (pcap_stats), then "stats RECV DROP IFDROP".
 * With -r FILE it reads a capture file instead, as the kernel would meet
 * its frames on a veth pair, and prints "INDEX PACKETS BYTES" per filter:
 * the oracle of the tests that replay a capture to many sessions.
 */
#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The capture keeps the first SNAPLEN bytes: the deepest byte a bench
 * filter reads is 67, 71 behind a VLAN tag. A ring timeout of TIMEOUT_MS
 * hands over a partly filled block, as tcpdump's 1 s does, only sooner.
 */
#define SNAPLEN		128
#define FRAME_MAX	262144	/* libpcap's MAXIMUM_SNAPLEN: a file's longest copy */
#define TIMEOUT_MS	10
#define FILTER_MAX	2048
#define DRAIN_MAX	256	/* dispatch calls at the end */

/*
 * Which filters see the frame as it came, and which without its tag.
 * Linux takes the outer 802.1Q tag off before any capture filter runs and
 * libpcap puts it back into the bytes it delivers. A filter that names
 * `vlan` reads the tag, which libpcap compiles for the kernel as a load of
 * the packet's metadata; compiled here, for a plain Ethernet link, it reads
 * the tag from the bytes. Any other filter meets the untagged frame in the
 * kernel, so it must meet it here too, or `tcp port 443` would count
 * differently here than in tcpdump or capstats.
 */
struct filter {
	struct bpf_program	 prog;
	int			 vlan;		/* names the vlan keyword */
	uint64_t		 packets, bytes;
};

struct reader {
	struct filter	*f;
	int		 n;
};

static volatile sig_atomic_t quit;

static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void __attribute__((noreturn))
die(const char *what, const char *why)
{
	fprintf(stderr, "offline: %s: %s\n", what, why);
	exit(1);
}

/* Whether FILTER uses the vlan keyword (as gen.c decides it). */
static int
has_vlan(const char *filter)
{
	const char *s = filter;
	size_t n;

	while (*s != '\0') {
		for (n = 0; (s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' &&
		    s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9'); n++)
			continue;
		if (n == 4 && strncmp(s, "vlan", 4) == 0)
			return 1;
		s += n > 0 ? n : 1;
	}
	return 0;
}

static void
count(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct reader *r = (struct reader *)user;
	struct pcap_pkthdr uh = *h;
	static u_char untagged[FRAME_MAX];
	const u_char *plain = bytes;
	struct filter *f;
	int i;

	if (h->caplen >= 18 && h->caplen <= FRAME_MAX && bytes[12] == 0x81 &&
	    bytes[13] == 0x00) {
		memcpy(untagged, bytes, 12);
		memcpy(untagged + 12, bytes + 16, h->caplen - 16);
		uh.caplen = h->caplen - 4;
		uh.len = h->len - 4;
		plain = untagged;
	}
	for (i = 0; i < r->n; i++) {
		f = &r->f[i];
		if (f->vlan ? pcap_offline_filter(&f->prog, h, bytes) :
		    pcap_offline_filter(&f->prog, &uh, plain)) {
			f->packets++;
			f->bytes += h->len;
		}
	}
}

static pcap_t *
capture_open(const char *iface, int buffer_kb)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_t *p;

	if ((p = pcap_create(iface, ebuf)) == NULL)
		die(iface, ebuf);
	pcap_set_snaplen(p, SNAPLEN);
	pcap_set_timeout(p, TIMEOUT_MS);
	pcap_set_buffer_size(p, buffer_kb * 1024);
	if (pcap_activate(p) < 0)
		die(iface, pcap_geterr(p));
	if (pcap_datalink(p) != DLT_EN10MB)
		die(iface, "not an Ethernet interface");
	if (pcap_setnonblock(p, 1, ebuf) == -1)
		die(iface, ebuf);
	return p;
}

/* Compile the first N filters of PATH (skipping # and empty lines) into R. */
static void
filters_load(struct reader *r, const char *path, int n)
{
	char line[FILTER_MAX + 2];
	struct filter *f;
	pcap_t *dead;
	FILE *fp;
	int i = 0;

	if ((f = r->f = calloc((size_t)n, sizeof(*f))) == NULL)
		die("calloc", strerror(errno));
	if ((fp = fopen(path, "r")) == NULL)
		die(path, strerror(errno));
	if ((dead = pcap_open_dead(DLT_EN10MB, SNAPLEN)) == NULL)
		die("pcap_open_dead", "failed");
	while (i < n && fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (pcap_compile(dead, &f[i].prog, line, 1,
		    PCAP_NETMASK_UNKNOWN) == -1)
			die(line, pcap_geterr(dead));
		f[i].vlan = has_vlan(line);
		i++;
	}
	pcap_close(dead);
	fclose(fp);
	if ((r->n = i) == 0)
		die(path, "no filters");
}

static void
filters_free(struct reader *r)
{
	int i;

	for (i = 0; i < r->n; i++)
		pcap_freecode(&r->f[i].prog);
	free(r->f);
}

/* Count FILE's frames with the first N filters of FILTERFILE. */
static int
replay(const char *file, const char *filters, int n)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct reader r;
	pcap_t *p;
	int i;

	filters_load(&r, filters, n);
	if ((p = pcap_open_offline(file, ebuf)) == NULL)
		die(file, ebuf);
	if (pcap_datalink(p) != DLT_EN10MB)
		die(file, "not an Ethernet capture");
	if (pcap_loop(p, -1, count, (u_char *)&r) == -1)
		die(file, pcap_geterr(p));
	for (i = 0; i < r.n; i++)
		printf("%d %llu %llu\n", i, (unsigned long long)r.f[i].packets,
		    (unsigned long long)r.f[i].bytes);
	pcap_close(p);
	filters_free(&r);
	return fflush(stdout) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct pcap_stat st;
	struct reader r;
	struct pollfd pfd;
	sigset_t block, wait;
	pcap_t *p;
	int i, n;

	if (argc == 5 && strcmp(argv[1], "-r") == 0 && (n = atoi(argv[4])) > 0)
		return replay(argv[2], argv[3], n);
	if (argc != 5 || (n = atoi(argv[4])) < 1) {
		fprintf(stderr, "usage: offline IFACE BUFFER_KB FILTERFILE N\n"
		    "       offline -r FILE FILTERFILE N\n");
		return 2;
	}
	filters_load(&r, argv[3], n);
	p = capture_open(argv[1], atoi(argv[2]));

	/* The signals arrive only inside ppoll, so none is missed between checks. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait);
	printf("ready %d\n", r.n);
	fflush(stdout);

	pfd.fd = pcap_get_selectable_fd(p);
	pfd.events = POLLIN;
	while (!quit) {
		if (ppoll(&pfd, 1, NULL, &wait) == -1) {
			if (errno == EINTR)
				continue;
			die("ppoll", strerror(errno));
		}
		if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
			die(argv[1], "capture socket failed");
		if (pcap_dispatch(p, -1, count, (u_char *)&r) < 0)
			die(argv[1], pcap_geterr(p));
	}
	/* A block the kernel has not handed over yet comes within its timeout. */
	for (i = 0; i < DRAIN_MAX; i++)
		if (poll(&pfd, 1, 3 * TIMEOUT_MS) <= 0 ||
		    pcap_dispatch(p, -1, count, (u_char *)&r) <= 0)
			break;
	if (pcap_stats(p, &st) == -1)
		die("pcap_stats", pcap_geterr(p));
	for (i = 0; i < r.n; i++)
		printf("%d %llu %llu %u\n", i, (unsigned long long)r.f[i].packets,
		    (unsigned long long)r.f[i].bytes, st.ps_drop);
	printf("stats %u %u %u\n", st.ps_recv, st.ps_drop, st.ps_ifdrop);
	pcap_close(p);
	filters_free(&r);
	return 0;
}
