/*
 * kdiff.c: the kernel path's translation held against the kernel itself.
 * Every classic program runs twice on the same packets: as it is, attached
 * with SO_ATTACH_FILTER to a packet socket (the kernel's own classic BPF),
 * and translated by xlate_build_test(), attached with SO_ATTACH_BPF to a
 * second one; both must accept as many packets. The programs: the
 * corpus's filters as libpcap compiles them for the interface, expressions
 * that index and shift in odd ways, random programs and mutants of
 * libpcap's; one pair in four on SOCK_DGRAM sockets, where packets start
 * at the network header. The translation may refuse a program (the daemon
 * then uses libpcap); it may not disagree. The counting form,
 * xlate_build(), is held against the same classic sockets: packets, and
 * bytes from each packet's length and VLAN tag as the socket got it.
 *
 * Usage: kdiff -r RECV -t SEND [-c CORPUS] [-s SEED] [-n RANDOM]
 *	      [-m MUTANTS]
 * RECV and SEND are the two ends of a veth pair, in a network namespace of
 * the test's own, that carry nothing else; an MTU of 9000 lets frames
 * larger than a page through, which the kernel keeps in paged data. SEED
 * repeats a run; RANDOM and MUTANTS are how many of each to make (400).
 * Needs root. Prints PASS: and FAIL: lines; exits 1 on any failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* recvmmsg(2) */
#endif

#include "../../daemon/xlate.c"
#include "../../daemon/bpfsys.c"

/* libpcap's struct bpf_insn is the kernel's struct sock_filter; see xlate.h. */
#define bpf_insn pcap_bpf_insn
#include <pcap/pcap.h>
#undef bpf_insn

#include <sys/ioctl.h>
#include <sys/resource.h>

#include <glob.h>
#include <net/if.h>
#include <poll.h>
#include <time.h>

#define CHUNK		256	/* frames sent between two drains */
#define BATCH		64	/* messages per recvmmsg() */
#define RCVBUF		(4 << 20)
#define GROUP		64	/* filters per counting program */
#define SHOW_MAX	3	/* disagreements traced packet by packet */
#define WAIT_MS		3000	/* for the receiving end to see a frame */
#define FRAME_MAX	9100
#define SNAPLEN		262144

/* ---- what a run found */

static int failures;

static void	kd_fail(const char *, ...)
    __attribute__((format(printf, 1, 2)));

static void
kd_fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL: kdiff: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	failures++;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* xorshift64*: one seed gives every random choice of a run. */
static uint64_t rng;

static uint32_t
rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32);
}

static uint32_t
below(uint32_t n)
{
	return rnd() % n;
}

/* ---- the packets */

struct frame {
	uint8_t		*data;
	uint32_t	 len;
	char		 from[64];	/* file and record, or what was made */
};

static struct frame *frames;
static size_t nframes, capframes, ncorpus_frames;

static void
add_frame(const uint8_t *data, uint32_t len, const char *from)
{
	struct frame *n;

	if (nframes == capframes) {
		capframes = capframes ? capframes * 2 : 4096;
		if ((n = realloc(frames, capframes * sizeof(*n))) == NULL)
			abort();
		frames = n;
	}
	n = &frames[nframes++];
	if ((n->data = malloc(len)) == NULL)
		abort();
	memcpy(n->data, data, len);
	n->len = len;
	strlcpy(n->from, from, sizeof(n->from));
}

static int
load_pcap(const char *path)
{
	char ebuf[PCAP_ERRBUF_SIZE], from[64];
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *p;
	size_t i = 0;

	if ((p = pcap_open_offline(path, ebuf)) == NULL) {
		kd_fail("%s", ebuf);
		return -1;
	}
	while (pcap_next_ex(p, &h, &data) == 1) {
		snprintf(from, sizeof(from), "%.48s #%zu", name, i++);
		if (h->caplen == h->len && h->len >= ETH_HLEN)
			add_frame(data, h->caplen, from);
	}
	pcap_close(p);
	return 0;
}

static int
load_corpus(const char *corpus)
{
	char pattern[512];
	glob_t g;
	size_t i;

	snprintf(pattern, sizeof(pattern), "%s/*.pcap", corpus);
	if (glob(pattern, 0, NULL, &g) != 0) {
		kd_fail("no capture in %s", corpus);
		return -1;
	}
	for (i = 0; i < g.gl_pathc; i++)
		load_pcap(g.gl_pathv[i]);
	globfree(&g);
	ncorpus_frames = nframes;
	return 0;
}

/* A frame being made: appended to, then added. */
struct fb {
	uint8_t		 b[FRAME_MAX];
	size_t		 n;
};

static void
fb_put(struct fb *f, const void *p, size_t n)
{
	if (f->n + n > sizeof(f->b))
		abort();
	memcpy(f->b + f->n, p, n);
	f->n += n;
}

static void
fb_u8(struct fb *f, uint8_t v)
{
	fb_put(f, &v, 1);
}

static void
fb_u16(struct fb *f, uint16_t v)
{
	fb_u8(f, (uint8_t)(v >> 8));
	fb_u8(f, (uint8_t)v);
}

static void
fb_u32(struct fb *f, uint32_t v)
{
	fb_u16(f, (uint16_t)(v >> 16));
	fb_u16(f, (uint16_t)v);
}

static void
payload(struct fb *f, size_t n)
{
	while (n-- > 0)
		fb_u8(f, (uint8_t)rnd());
}

static const uint8_t mac_bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t mac_mcast[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };
static const uint8_t mac_other[6] = { 0x02, 0x42, 0xac, 0x11, 0x00, 0x07 };
static const uint8_t mac_src[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static uint8_t mac_rx[6];

static void
eth(struct fb *f, const uint8_t *dst, uint16_t type)
{
	f->n = 0;
	fb_put(f, dst, 6);
	fb_put(f, mac_src, 6);
	fb_u16(f, type);
}

static void
vlan(struct fb *f, uint16_t tci, uint16_t type)
{
	fb_u16(f, tci);
	fb_u16(f, type);
}

/* An IPv4 header of IHL words (options of NOPs), then LEN bytes of PROTO. */
static void
ipv4(struct fb *f, uint8_t proto, unsigned ihl, size_t len, uint16_t frag)
{
	unsigned i;

	fb_u8(f, (uint8_t)(0x40 | ihl));
	fb_u8(f, 0);
	fb_u16(f, (uint16_t)(ihl * 4 + len));
	fb_u16(f, (uint16_t)rnd());
	fb_u16(f, frag);
	fb_u8(f, 64);
	fb_u8(f, proto);
	fb_u16(f, 0);
	fb_u32(f, 0x0a000001);
	fb_u32(f, 0x0a000002);
	for (i = 5; i < ihl; i++)
		fb_u32(f, 0x01010101);
}

static void
ipv6(struct fb *f, uint8_t next, size_t len)
{
	fb_u32(f, 0x60000000);
	fb_u16(f, (uint16_t)len);
	fb_u8(f, next);
	fb_u8(f, 64);
	fb_u32(f, 0xfe800000);
	fb_u32(f, 0);
	fb_u32(f, 0);
	fb_u32(f, 1);
	fb_u32(f, 0xfe800000);
	fb_u32(f, 0);
	fb_u32(f, 0);
	fb_u32(f, 2);
}

static void
udp(struct fb *f, uint16_t dport, size_t len)
{
	fb_u16(f, (uint16_t)(40000 + below(1000)));
	fb_u16(f, dport);
	fb_u16(f, (uint16_t)(8 + len));
	fb_u16(f, 0);
	payload(f, len);
}

static void
tcp(struct fb *f, uint16_t dport, unsigned doff, size_t len)
{
	unsigned i;

	fb_u16(f, (uint16_t)(40000 + below(1000)));
	fb_u16(f, dport);
	fb_u32(f, rnd());
	fb_u32(f, rnd());
	fb_u8(f, (uint8_t)(doff << 4));
	fb_u8(f, 0x18);
	fb_u16(f, 8192);
	fb_u32(f, 0);
	for (i = 5; i < doff; i++)
		fb_u32(f, 0x01010101);
	payload(f, len);
}

static void
made(struct fb *f, const char *what)
{
	char from[64];

	snprintf(from, sizeof(from), "made: %s", what);
	add_frame(f->b, (uint32_t)f->n, from);
}

/* Frames the corpus lacks: every pkt_type, VLAN tags, IPv6, odd lengths. */
static void
make_frames(unsigned mtu)
{
	static const uint16_t bigs[] = { 1514, 4000, 8000, 9014 };
	const uint8_t *dsts[] = { mac_rx, mac_bcast, mac_mcast, mac_other };
	struct fb f;
	unsigned i, cut;
	char what[48];

	for (i = 0; i < 4; i++) {
		eth(&f, dsts[i], ETH_P_IP);
		ipv4(&f, IPPROTO_UDP, 5, 8 + 18, 0);
		udp(&f, 53, 18);
		made(&f, "IPv4 UDP to each kind of address");
	}
	eth(&f, mac_rx, ETH_P_IP);
	ipv4(&f, IPPROTO_TCP, 15, 60 + 100, 0);
	tcp(&f, 80, 15, 100);
	made(&f, "IPv4 and TCP with the longest options");
	eth(&f, mac_other, ETH_P_IP);
	ipv4(&f, IPPROTO_UDP, 5, 40, 0x2000 | 185);
	payload(&f, 40);
	made(&f, "an IPv4 fragment");
	eth(&f, mac_other, ETH_P_8021Q);
	vlan(&f, 0xa064, ETH_P_IP);
	ipv4(&f, IPPROTO_UDP, 5, 8 + 30, 0);
	udp(&f, 9000, 30);
	made(&f, "802.1Q VLAN 100, IPv4 UDP");
	eth(&f, mac_rx, ETH_P_8021AD);
	vlan(&f, 0x0c8, ETH_P_8021Q);
	vlan(&f, 0x2065, ETH_P_IP);
	ipv4(&f, IPPROTO_TCP, 6, 20 + 10, 0);
	tcp(&f, 443, 5, 10);
	made(&f, "802.1ad 200 and 802.1Q 101 (QinQ), IPv4 TCP");
	eth(&f, mac_bcast, ETH_P_8021Q);
	vlan(&f, 0x0000, ETH_P_IPV6);
	ipv6(&f, IPPROTO_UDP, 8 + 12);
	udp(&f, 547, 12);
	made(&f, "802.1Q priority tag, IPv6 UDP");
	eth(&f, mac_other, ETH_P_8021Q);
	vlan(&f, 0x0fff, ETH_P_ARP);
	payload(&f, 2);
	made(&f, "802.1Q, 20 bytes");
	eth(&f, mac_other, ETH_P_IPV6);
	ipv6(&f, IPPROTO_TCP, 20 + 40);
	tcp(&f, 22, 5, 40);
	made(&f, "IPv6 TCP");
	eth(&f, mac_mcast, ETH_P_IPV6);
	ipv6(&f, IPPROTO_HOPOPTS, 8 + 8 + 24);
	fb_u16(&f, IPPROTO_FRAGMENT << 8);	/* next, 8 bytes */
	fb_u16(&f, 0x0104);			/* PadN of 4 */
	fb_u32(&f, 0);
	fb_u16(&f, IPPROTO_ICMPV6 << 8);
	fb_u16(&f, 0);				/* offset 0, last */
	fb_u32(&f, rnd());
	fb_u8(&f, 135);				/* neighbour solicitation */
	fb_u8(&f, 0);
	payload(&f, 22);
	made(&f, "IPv6 hop-by-hop, fragment, ICMPv6");
	eth(&f, mac_bcast, ETH_P_ARP);
	fb_u32(&f, 0x00010800);
	fb_u32(&f, 0x06040001);
	payload(&f, 20);
	made(&f, "ARP");
	eth(&f, mac_other, 38);
	fb_u32(&f, 0x42420300);
	payload(&f, 34);
	made(&f, "802.3 with LLC (STP)");
	eth(&f, mac_other, 40);
	fb_u16(&f, 0xffff);
	payload(&f, 38);
	made(&f, "802.3 raw (IPX)");
	for (cut = 14; cut <= 42; cut += cut < 22 ? 1 : 4) {
		eth(&f, mac_other, ETH_P_IP);
		ipv4(&f, IPPROTO_TCP, 5, 20, 0);
		tcp(&f, 80, 5, 0);
		f.n = cut;
		snprintf(what, sizeof(what), "IPv4 TCP cut to %u bytes", cut);
		made(&f, what);
	}
	for (i = 0; i < sizeof(bigs) / sizeof(bigs[0]); i++) {
		if (bigs[i] > mtu + ETH_HLEN)
			continue;
		eth(&f, i % 2 ? mac_rx : mac_other, ETH_P_IP);
		ipv4(&f, IPPROTO_UDP, 5, bigs[i] - 34u, 0);
		udp(&f, 2049, bigs[i] - 42u);
		snprintf(what, sizeof(what), "IPv4 UDP, %u bytes", bigs[i]);
		made(&f, what);
	}
	if (mtu >= 8000) {
		eth(&f, mac_other, ETH_P_8021Q);
		vlan(&f, 0x3005, ETH_P_IPV6);
		ipv6(&f, IPPROTO_TCP, 20 + 7900);
		tcp(&f, 80, 5, 7900);
		made(&f, "802.1Q, IPv6 TCP, 7978 bytes");
	}
}

/* ---- the programs */

enum kind {
	K_CORPUS,	/* filters.txt, compiled for the interface */
	K_EXPR,		/* expressions of ours, likewise */
	K_RANDOM,	/* random valid classic programs */
	K_MUTANT,	/* libpcap's programs, changed */
	K_KINDS
};

static const char *kind_names[K_KINDS] = {
	"corpus filters", "expressions", "random programs", "mutants",
};

#define REASONS_MAX	8

/* What became of the programs of one kind. */
struct tally {
	unsigned	 tried, kernel_refused, xlate_refused, compared;
	unsigned	 xlate_only;	/* the kernel refused, xlate did not */
	char		 reason[REASONS_MAX][160];
	unsigned	 nreason[REASONS_MAX];
};

static struct tally tallies[K_KINDS];

struct prog {
	enum kind		 kind;
	int			 type;		/* SOCK_RAW or SOCK_DGRAM */
	char			 name[200];
	struct sock_filter	*insns;
	unsigned		 len;
	int			 cfd, efd;	/* classic, translated */
	uint64_t		 cpackets, epackets, drops;
	uint64_t		 cbytes;	/* wire lengths, as drained */
};

static struct prog *progs;
static size_t nprogs, capprogs;

/* Count REASON (what follows its instruction number) for TALLY. */
static void
note_reason(struct tally *t, const char *err)
{
	const char *why = strstr(err, "): ") ? strstr(err, "): ") + 3 : err;
	unsigned i;

	for (i = 0; i < REASONS_MAX - 1 && t->reason[i][0] != '\0'; i++)
		if (strcmp(t->reason[i], why) == 0)
			break;
	if (i == REASONS_MAX - 1)
		why = "(other reasons)";
	if (t->reason[i][0] == '\0')
		strlcpy(t->reason[i], why, sizeof(t->reason[i]));
	t->nreason[i]++;
}

/*
 * A packet socket of TYPE: SOCK_RAW sees packets from their link-layer
 * header, SOCK_DGRAM from their network header (Linux cooked captures).
 * Protocol 0: it receives nothing until bound.
 */
static int
pkt_socket(int type)
{
	int fd, size = RCVBUF;

	if ((fd = socket(AF_PACKET, type | SOCK_CLOEXEC, 0)) == -1) {
		kd_fail("packet socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size,
	    sizeof(size)) == -1)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	return fd;
}

/* A socket that runs the translation of P; -1 after saying why not. */
static int
xlate_socket(const struct prog *p)
{
	struct xlate_prog xp;
	char err[1024];
	int pfd, fd;

	if (xlate_build_test(p->insns, p->len, &xp, err, sizeof(err)) == -1) {
		kd_fail("%s: xlate_check() took it, xlate_build_test() did "
		    "not: %s", p->name, err);
		return -1;
	}
	pfd = bpfsys_prog_load(&xp, err, sizeof(err));
	xlate_free(&xp);
	if (pfd == -1) {
		kd_fail("%s: the translation does not load: %s", p->name, err);
		return -1;
	}
	if ((fd = pkt_socket(p->type)) != -1 &&
	    bpfsys_attach(fd, pfd, err, sizeof(err)) == -1) {
		kd_fail("%s: %s", p->name, err);
		close(fd);
		fd = -1;
	}
	close(pfd);
	return fd;
}

/*
 * Program F of kind K: kept, with its two sockets, if the kernel takes it
 * as a classic filter and the translation does not refuse it. One in four
 * runs on SOCK_DGRAM sockets.
 */
static void
add_prog(enum kind k, const char *name, const struct sock_filter *f,
    unsigned len)
{
	struct tally *t = &tallies[k];
	struct sock_fprog fp = { (unsigned short)len,
	    (struct sock_filter *)(uintptr_t)f };
	int type = t->tried % 4 == 3 ? SOCK_DGRAM : SOCK_RAW;
	struct prog *p;
	char err[1024];
	bool taken;
	int cfd, one = 1;

	t->tried++;
	if ((cfd = pkt_socket(type)) == -1)
		return;
	taken = setsockopt(cfd, SOL_SOCKET, SO_ATTACH_FILTER, &fp,
	    sizeof(fp)) == 0;
	if (xlate_check(f, len, err, sizeof(err)) == -1) {
		if (taken) {
			t->xlate_refused++;
			note_reason(t, err);
		} else
			t->kernel_refused++;
		close(cfd);
		return;
	}
	if (!taken) {
		t->kernel_refused++;
		t->xlate_only++;
		close(cfd);
		return;
	}
	setsockopt(cfd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
	if (nprogs == capprogs) {
		capprogs = capprogs ? capprogs * 2 : 256;
		if ((p = realloc(progs, capprogs * sizeof(*p))) == NULL)
			abort();
		progs = p;
	}
	p = &progs[nprogs];
	memset(p, 0, sizeof(*p));
	p->kind = k;
	p->type = type;
	snprintf(p->name, sizeof(p->name), "%.180s%s", name,
	    type == SOCK_DGRAM ? " (SOCK_DGRAM)" : "");
	if ((p->insns = malloc(len * sizeof(*f))) == NULL)
		abort();
	memcpy(p->insns, f, len * sizeof(*f));
	p->len = len;
	p->cfd = cfd;
	if ((p->efd = xlate_socket(p)) == -1) {
		free(p->insns);
		close(cfd);
		return;
	}
	t->compared++;
	nprogs++;
}

/* ---- libpcap's programs: the corpus's filters, our expressions */

/*
 * Indexes and shifts that libpcap compiles as written: loads at X + k
 * that wrap, go below the packet or past it, shifts by 32 and more,
 * divisions by what may be 0.
 */
static const char *exprs[] = {
	"ether[ether[12] & 3] = 0", "ip[ip[0] & 0xf] > 3",
	"ip[0] << ip[8] != 0", "ip[2:2] >> (ip[9]) = 0",
	"ip[ip[8] - 100] = 0", "(ip[8] / (ip[9] - 17)) = 1",
	"ip[8] % ip[1] = 0",
	"ip[0] << (ip[8] + 32) = 0", "ip[2:2] >> (ip[1] - 1) = 0",
	"(ip[8] ^ ip[9]) >> (ip[0] & 0x3f) = 0",
	"ether[len - 4:4] = 0", "ether[len - 1] != 0x55",
	"len >= 4 and ether[len - 4:4] != 0",
	"ip[ip[8] - 200:2] > 0", "ether[ether[0] * 0x1000000] = 0",
	"ether[ether[14] * 0x1000000 + 14] = 0x45",
	"ether[0xffffff00 + ether[13]] = 0", "ether[14 - ether[14]] = 0",
	"udp[udp[4:2] - 8] = 0", "tcp[tcp[12] >> 4] = 0", "ip6[ip6[6]] = 0",
	"vlan and ip[ip[0] & 0xf] = 0",
	"ether[(ether[12:2] - 0x8100) * 4] = 0",
	"ip[(ip[0] & 0xf) * 4 - 1] = 0", "ip[0] * ip[1] * ip[2] * ip[3] = 0",
	"-ip[8] > 100", "ip[ip[9] % 3] = 0",
	"ether[ether[12:2] / (ether[13] & 1)] = 8",
	"ether[12:2] % (ether[14] - 0x45) = 0",
	"vlan 100 or vlan 101", "inbound and ip6", "outbound",
	"ether[ether[12] & 0x1f:4] = ether[0:4]",
};

static pcap_t *live;

static void
add_expr(enum kind k, const char *expr, struct bpf_program *keep)
{
	struct bpf_program bp;
	char name[200];

	if (pcap_compile(live, &bp, expr, 1, PCAP_NETMASK_UNKNOWN) == -1) {
		printf("kdiff: '%s' does not compile: %s\n", expr,
		    pcap_geterr(live));
		return;
	}
	snprintf(name, sizeof(name), "%s '%s'", k == K_CORPUS ? "corpus" :
	    "expression", expr);
	add_prog(k, name, (struct sock_filter *)bp.bf_insns, bp.bf_len);
	if (keep != NULL)
		*keep = bp;
	else
		pcap_freecode(&bp);
}

/* libpcap's programs, kept in BASE for the mutants; how many. */
static size_t
add_libpcap(const char *iface, const char *corpus, struct bpf_program *base,
    size_t max)
{
	char ebuf[PCAP_ERRBUF_SIZE], path[512], line[1024];
	size_t n = 0, i;
	FILE *f;

	if ((live = pcap_create(iface, ebuf)) == NULL ||
	    pcap_set_snaplen(live, SNAPLEN) != 0 || pcap_activate(live) < 0) {
		kd_fail("%s: %s", iface, live ? pcap_geterr(live) : ebuf);
		if (live != NULL)
			pcap_close(live);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/filters.txt", corpus);
	if ((f = fopen(path, "re")) == NULL)
		kd_fail("%s: %s", path, strerror(errno));
	while (f != NULL && fgets(line, sizeof(line), f) != NULL && n < max) {
		line[strcspn(line, "\n")] = '\0';
		add_expr(K_CORPUS, line, &base[n]);
		n += base[n].bf_insns != NULL;
	}
	if (f != NULL)
		fclose(f);
	for (i = 0; i < sizeof(exprs) / sizeof(exprs[0]) && n < max; i++) {
		add_expr(K_EXPR, exprs[i], &base[n]);
		n += base[n].bf_insns != NULL;
	}
	pcap_close(live);	/* its own socket would see the traffic */
	return n;
}

/* ---- random programs and mutants */

/*
 * An offset for a load: mostly in the headers, often at the edges of the
 * packet and of the areas before it (those the translation refuses too).
 */
static uint32_t
gen_offset(void)
{
	switch (below(32)) {
	case 0: case 1: case 2:
		return 80 + below(120);
	case 3: case 4: case 5:
		return below(2) ? 1400 + below(130) : 30 + below(40);
	case 6: case 7:
		return 4000 + below(5200);	/* paged, in large frames */
	case 8: case 9: case 10:
		return below(1600);
	case 11:
		return (uint32_t)SKF_NET_OFF + below(64);
	case 12:
		return (uint32_t)SKF_LL_OFF + below(64);
	case 13:
		return (uint32_t)(below(2) ? SKF_NET_OFF : SKF_LL_OFF) - 1 -
		    below(8);
	case 14:
		return (uint32_t)SKF_AD_OFF + (below(8) ? 4 * below(17) :
		    below(70));
	case 15:
		return (below(2) ? 0x7ffffffcu : 0xfffffffcu) + below(8);
	}
	return below(80);
}

/* A value for X before a load at X + k: small, or one that wraps. */
static uint32_t
gen_index(void)
{
	switch (below(16)) {
	case 0: case 1:
		return UINT32_MAX - below(64);	/* X + k wraps */
	case 2:
		return 0x80000000u - 4 + below(8);
	case 3:
		return (uint32_t)SKF_NET_OFF + below(64);
	case 4:
		return (uint32_t)SKF_LL_OFF - 4 + below(64);
	case 5:
		return rnd();
	case 6:
		return 0x80000000u + below(0x7fe00000);	/* none there */
	}
	return below(64);
}

/* A constant for arithmetic and compares. */
static uint32_t
gen_imm(void)
{
	static const uint32_t edges[] = { 0, 1, 2, 4, 14, 31, 32, 33, 63, 64,
	    0xff, 0x800, 0xffff, 0x80000000u, 0xffffffffu };

	switch (below(4)) {
	case 0:
		return edges[below(sizeof(edges) / sizeof(edges[0]))];
	case 1:
		return rnd();
	}
	return below(64);
}

static const uint8_t alu_ops[] = { BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV,
    BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD, BPF_XOR };
static const uint8_t jmp_ops[] = { BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET };
static const uint8_t sizes[] = { BPF_W, BPF_H, BPF_B };

static struct sock_filter
gen_alu(void)
{
	uint8_t op = alu_ops[below(sizeof(alu_ops))];
	uint32_t k = gen_imm();

	if (op == BPF_NEG)
		return (struct sock_filter)BPF_STMT(BPF_ALU | BPF_NEG, 0);
	if (below(2))
		return (struct sock_filter)BPF_STMT(BPF_ALU | op | BPF_X, 0);
	if ((op == BPF_DIV || op == BPF_MOD) && k == 0)
		k = 1 + below(16);
	if (op == BPF_LSH || op == BPF_RSH)
		k %= 32;
	return (struct sock_filter)BPF_STMT(BPF_ALU | op | BPF_K, k);
}

/* A load into A: packet, ancillary, length, constant or M[] in WRITTEN. */
static struct sock_filter
gen_ld(uint16_t written)
{
	uint8_t size = sizes[below(sizeof(sizes))];
	unsigned slot = below(BPF_MEMWORDS);

	switch (below(10)) {
	case 0:
	case 1:
	case 2:
		return (struct sock_filter)BPF_STMT(BPF_LD | size | BPF_IND,
		    below(3) ? below(80) : gen_offset());
	case 3:
		return (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_LEN,
		    0);
	case 4:
		return (struct sock_filter)BPF_STMT(BPF_LD | BPF_IMM,
		    gen_imm());
	case 5:
		if (written & 1u << slot)
			return (struct sock_filter)BPF_STMT(BPF_LD | BPF_MEM,
			    slot);
		break;
	}
	return (struct sock_filter)BPF_STMT(BPF_LD | size | BPF_ABS,
	    gen_offset());
}

static struct sock_filter
gen_ldx(uint16_t written)
{
	unsigned slot = below(BPF_MEMWORDS);

	switch (below(8)) {
	case 0:
	case 1:
		return (struct sock_filter)BPF_STMT(BPF_LDX | BPF_B | BPF_MSH,
		    below(2) ? 14 : gen_offset());
	case 2:
		return (struct sock_filter)BPF_STMT(BPF_LDX | BPF_W | BPF_LEN,
		    0);
	case 3:
		if (written & 1u << slot)
			return (struct sock_filter)BPF_STMT(BPF_LDX | BPF_MEM,
			    slot);
		break;
	}
	return (struct sock_filter)BPF_STMT(BPF_LDX | BPF_IMM, gen_index());
}

/* A forward jump at PC of a program of LEN instructions. */
static struct sock_filter
gen_jump(unsigned pc, unsigned len)
{
	unsigned room = len - pc - 2, most = room < 255 ? room : 255;
	uint8_t op = jmp_ops[below(sizeof(jmp_ops))];

	if (below(8) == 0)
		return (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JA,
		    below(most + 1), 0, 0);
	if (below(3) == 0)
		return (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_X, 0,
		    (uint8_t)below(most + 1), (uint8_t)below(most + 1));
	return (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, gen_imm(),
	    (uint8_t)below(most + 1), (uint8_t)below(most + 1));
}

/* An ancillary load; one in eight of those the translation refuses. */
static struct sock_filter
gen_anc(void)
{
	static const uint8_t taken[] = { SKF_AD_PROTOCOL, SKF_AD_PKTTYPE,
	    SKF_AD_IFINDEX, SKF_AD_MARK, SKF_AD_QUEUE, SKF_AD_RXHASH,
	    SKF_AD_ALU_XOR_X, SKF_AD_VLAN_TAG, SKF_AD_VLAN_TAG_PRESENT,
	    SKF_AD_VLAN_TPID };
	static const uint8_t refused[] = { SKF_AD_NLATTR, SKF_AD_NLATTR_NEST,
	    SKF_AD_HATYPE, SKF_AD_CPU, SKF_AD_PAY_OFFSET, SKF_AD_RANDOM };
	uint32_t k = below(8) ? taken[below(sizeof(taken))] :
	    refused[below(sizeof(refused))];

	return (struct sock_filter)BPF_STMT(BPF_LD | sizes[below(3)] | BPF_ABS,
	    (uint32_t)SKF_AD_OFF + k);
}

/*
 * A valid classic program of LEN instructions: a few stores to M[] first
 * (what later loads of M[] may read), then anything, then a return.
 */
static void
gen_prog(struct sock_filter *f, unsigned len)
{
	uint16_t written = 0;
	unsigned pc = 0, slot;

	while (pc + 3 < len && below(3) == 0) {
		slot = below(BPF_MEMWORDS);
		written |= (uint16_t)(1u << slot);
		if (below(2)) {
			f[pc] = gen_ld(0);
			f[pc + 1] = (struct sock_filter)BPF_STMT(BPF_ST, slot);
		} else {
			f[pc] = gen_ldx(0);
			f[pc + 1] = (struct sock_filter)BPF_STMT(BPF_STX, slot);
		}
		pc += 2;
	}
	for (; pc < len - 1; pc++)
		switch (below(20)) {
		case 0: case 1: case 2: case 3: case 4:
			f[pc] = gen_ld(written);
			break;
		case 5: case 6:
			f[pc] = gen_ldx(written);
			break;
		case 7: case 8: case 9: case 10: case 11:
			f[pc] = gen_alu();
			break;
		case 12: case 13: case 14: case 15:
			f[pc] = gen_jump(pc, len);
			break;
		case 16:
			f[pc] = (struct sock_filter)BPF_STMT(below(2) ? BPF_ST :
			    BPF_STX, below(BPF_MEMWORDS));
			break;
		case 17:
			f[pc] = (struct sock_filter)BPF_STMT(BPF_MISC |
			    (below(2) ? BPF_TAX : BPF_TXA), 0);
			break;
		case 18:
			f[pc] = (struct sock_filter)BPF_STMT(BPF_RET |
			    (below(2) ? BPF_A : BPF_K), below(2));
			break;
		default:
			f[pc] = gen_anc();
		}
	f[len - 1] = (struct sock_filter)BPF_STMT(BPF_RET |
	    (below(4) ? BPF_A : BPF_K), below(4) ? 0xffff : 0);
}

/* Change the instruction IN, keeping its place in the jumps. */
static void
mutate(struct sock_filter *in)
{
	uint8_t mode = BPF_MODE(in->code);

	switch (BPF_CLASS(in->code)) {
	case BPF_LD:
		if (mode == BPF_ABS && below(3) == 0)
			in->code = (uint16_t)(in->code ^ BPF_ABS ^ BPF_IND);
		else if (mode == BPF_IND && below(3) == 0)
			in->k = below(2) ? in->k + gen_index() : gen_offset();
		else if (mode == BPF_ABS || mode == BPF_IND)
			in->k = gen_offset();
		else
			*in = gen_ld(0);
		break;
	case BPF_LDX:
		*in = below(2) ? gen_ldx(0) : (struct sock_filter)BPF_STMT(
		    BPF_LDX | BPF_IMM, gen_index());
		break;
	case BPF_ALU:
		*in = gen_alu();
		break;
	case BPF_JMP:
		if (BPF_OP(in->code) == BPF_JA)
			break;
		if (below(2))
			in->k = below(2) ? in->k + below(3) - 1 : gen_imm();
		else
			in->code = (uint16_t)(BPF_JMP |
			    jmp_ops[below(sizeof(jmp_ops))] |
			    (below(3) ? BPF_SRC(in->code) : BPF_X));
		break;
	case BPF_RET:
		*in = (struct sock_filter)BPF_STMT(BPF_RET | (below(2) ?
		    BPF_A : BPF_K), in->k);
		break;
	case BPF_MISC:
		*in = (struct sock_filter)BPF_STMT(BPF_MISC | (below(2) ?
		    BPF_TAX : BPF_TXA), 0);
		break;
	}
}

static void
add_random(unsigned n)
{
	struct sock_filter f[64];
	char name[64];
	unsigned i, len;

	for (i = 0; i < n; i++) {
		len = 4 + below(40);
		gen_prog(f, len);
		snprintf(name, sizeof(name), "random #%u", i);
		add_prog(K_RANDOM, name, f, len);
	}
}

/* N mutants of the programs in BASE, one to three changes each. */
static void
add_mutants(const struct bpf_program *base, size_t nbase, unsigned n)
{
	struct sock_filter *f;
	char name[64];
	unsigned i, j, len;
	size_t b;

	if (nbase == 0)
		return;
	if ((f = malloc(XLATE_FILTER_INSNS_MAX * sizeof(*f))) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		b = below((uint32_t)nbase);
		len = base[b].bf_len;
		memcpy(f, base[b].bf_insns, len * sizeof(*f));
		for (j = 1 + below(3); j > 0; j--)
			mutate(&f[below(len)]);
		snprintf(name, sizeof(name), "mutant #%u of program %zu", i, b);
		add_prog(K_MUTANT, name, f, len);
	}
	free(f);
}

/* ---- the counting form: every program again, GROUP to a program */

struct group {
	size_t			 prog[GROUP];	/* i counts progs[prog[i]] */
	size_t			 n;
	int			 type;
	struct bpfsys_map	 m;
	int			 fd;
};

static struct group *groups;
static size_t ngroups;

static int
add_group(struct group *g)
{
	struct xlate_filter fl[GROUP];
	struct xlate_prog xp;
	char err[1024];
	size_t i;
	int pfd;

	for (i = 0; i < g->n; i++)
		fl[i] = (struct xlate_filter){ progs[g->prog[i]].insns,
		    progs[g->prog[i]].len, (uint32_t)i };
	g->fd = pfd = -1;
	if (bpfsys_map_create(&g->m, (uint32_t)g->n, err, sizeof(err)) == -1 ||
	    xlate_build(fl, g->n, g->m.fd, g->m.slots, NULL, &xp, err,
	    sizeof(err)) == -1)
		goto bad;
	pfd = bpfsys_prog_load(&xp, err, sizeof(err));
	xlate_free(&xp);
	if (pfd == -1 || (g->fd = pkt_socket(g->type)) == -1 ||
	    bpfsys_attach(g->fd, pfd, err, sizeof(err)) == -1)
		goto bad;
	close(pfd);
	return 0;
bad:
	kd_fail("the counting program of %s and %zu more: %s",
	    progs[g->prog[0]].name, g->n - 1, err);
	if (pfd != -1)
		close(pfd);
	if (g->fd != -1)
		close(g->fd);
	bpfsys_map_close(&g->m);
	return -1;
}

/* The programs of each socket type, GROUP to a counting program. */
static void
add_groups(void)
{
	static const int types[] = { SOCK_RAW, SOCK_DGRAM };
	struct group *g;
	size_t t, i;

	if ((groups = calloc(nprogs / GROUP + 2, sizeof(*groups))) == NULL)
		abort();
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		g = &groups[ngroups];
		g->type = types[t];
		for (i = 0; i < nprogs; i++) {
			if (progs[i].type != g->type)
				continue;
			g->prog[g->n++] = i;
			if (g->n < GROUP)
				continue;
			if (add_group(g) == 0)
				ngroups++;
			g = &groups[ngroups];
			memset(g, 0, sizeof(*g));
			g->type = types[t];
		}
		if (g->n > 0 && add_group(g) == 0)
			ngroups++;
	}
}

/* ---- the traffic */

static unsigned rx_index, tx_index;
static int ref_fd = -1, tx_fd = -1;	/* every frame; the sender */
static uint64_t ref_seen, aux_missing;

static int
bind_to(int fd, unsigned ifindex, uint16_t proto)
{
	struct sockaddr_ll sll;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(proto);
	sll.sll_ifindex = (int)ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1) {
		kd_fail("bind: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Take what FD queued, without blocking: how many packets. With BYTES,
 * add their wire lengths: the length each had, as the filter saw it, and
 * 4 for a VLAN tag the kernel took out, which is what xlate_build()
 * counts by default.
 */
static uint64_t
drain(int fd, uint64_t *bytes)
{
	static struct mmsghdr msg[BATCH];
	static struct iovec iov[BATCH];
	static char buf[BATCH];
	static char ctl[BATCH][CMSG_SPACE(sizeof(struct tpacket_auxdata))];
	struct tpacket_auxdata aux;
	struct cmsghdr *c;
	uint64_t n = 0;
	int got, i;
	bool seen;

	do {
		for (i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ &buf[i], 1 };
			memset(&msg[i], 0, sizeof(msg[i]));
			msg[i].msg_hdr.msg_iov = &iov[i];
			msg[i].msg_hdr.msg_iovlen = 1;
			msg[i].msg_hdr.msg_control = bytes ? ctl[i] : NULL;
			msg[i].msg_hdr.msg_controllen = bytes ? sizeof(ctl[i]) :
			    0;
		}
		got = recvmmsg(fd, msg, BATCH, MSG_DONTWAIT, NULL);
		for (i = 0; i < got && bytes != NULL; i++) {
			seen = false;
			for (c = CMSG_FIRSTHDR(&msg[i].msg_hdr); c != NULL;
			    c = CMSG_NXTHDR(&msg[i].msg_hdr, c)) {
				if (c->cmsg_level != SOL_PACKET ||
				    c->cmsg_type != PACKET_AUXDATA)
					continue;
				memcpy(&aux, CMSG_DATA(c), sizeof(aux));
				*bytes += aux.tp_len + (aux.tp_status &
				    TP_STATUS_VLAN_VALID ? 4 : 0);
				seen = true;
			}
			aux_missing += !seen;
		}
		if (got > 0)
			n += (uint64_t)got;
	} while (got == BATCH);
	return n;
}

static void
drain_all(void)
{
	size_t i;

	for (i = 0; i < nprogs; i++) {
		if (progs[i].cfd != -1)
			drain(progs[i].cfd, &progs[i].cbytes);
		if (progs[i].efd != -1)
			drain(progs[i].efd, NULL);
	}
}

/*
 * Until the reference socket saw WANT frames. It was bound first, so the
 * kernel serves it last of all the interface's packet sockets: the others
 * have seen them too.
 */
static int
wait_ref(uint64_t want)
{
	struct pollfd pfd = { ref_fd, POLLIN, 0 };
	double end = now_s() + WAIT_MS / 1000.0;

	for (;;) {
		ref_seen += drain(ref_fd, NULL);
		if (ref_seen >= want)
			return 0;
		if (now_s() > end) {
			kd_fail("the receiving end saw %ju frames, %ju were "
			    "sent", (uintmax_t)ref_seen, (uintmax_t)want);
			return -1;
		}
		poll(&pfd, 1, 10);
	}
}

static int
send_frame(const struct frame *f)
{
	if (send(tx_fd, f->data, f->len, 0) == (ssize_t)f->len)
		return 0;
	kd_fail("sending %s (%u bytes): %s", f->from, f->len, strerror(errno));
	return -1;
}

/* Every frame, CHUNK at a time, taking what each socket queued between. */
static int
send_frames(void)
{
	size_t i;

	for (i = 0; i < nframes; i++) {
		if (send_frame(&frames[i]) == -1)
			return -1;
		if ((i + 1) % CHUNK == 0 || i + 1 == nframes) {
			if (wait_ref(i + 1) == -1)
				return -1;
			drain_all();
		}
	}
	sleep_ms(20);
	drain_all();
	ref_seen += drain(ref_fd, NULL);
	if (ref_seen != nframes) {
		kd_fail("the receiving end saw %ju frames, %zu were sent: "
		    "other traffic on the interface?", (uintmax_t)ref_seen,
		    nframes);
		return -1;
	}
	return 0;
}

/* ---- the verdicts */

/* Add FD's counts since the last read (reading resets them). */
static void
read_stats(int fd, uint64_t *packets, uint64_t *drops)
{
	struct tpacket_stats st;
	socklen_t len = sizeof(st);

	if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == -1) {
		kd_fail("PACKET_STATISTICS: %s", strerror(errno));
		return;
	}
	*packets += st.tp_packets;	/* those dropped included */
	*drops += st.tp_drops;
}

static void
show_prog(const struct prog *p)
{
	unsigned i;

	for (i = 0; i < p->len; i++)
		printf("  | %s\n", bpf_image((const struct pcap_bpf_insn *)
		    &p->insns[i], (int)i));
}

/*
 * Both sockets of every program; the disagreeing ones in BAD. SPLIT:
 * how many programs the kernel made accept some frames and not others,
 * every one, none.
 */
static size_t
compare(size_t *bad, size_t max, size_t split[3])
{
	struct prog *p;
	size_t i, nbad = 0;

	for (i = 0; i < nprogs; i++) {
		p = &progs[i];
		read_stats(p->cfd, &p->cpackets, &p->drops);
		read_stats(p->efd, &p->epackets, &p->drops);
		split[p->cpackets == 0 ? 2 : p->cpackets == nframes ? 1 : 0]++;
		if (p->drops != 0)
			kd_fail("%s: %ju packets dropped: the buffers are too "
			    "small", p->name, (uintmax_t)p->drops);
		if (p->cpackets == p->epackets)
			continue;
		kd_fail("%s: the kernel's filter accepted %ju packets, the "
		    "translation %ju", p->name, (uintmax_t)p->cpackets,
		    (uintmax_t)p->epackets);
		show_prog(p);
		if (nbad < max)
			bad[nbad++] = i;
	}
	return nbad;
}

/* Every program's counter of the counting form, against its classic socket. */
static size_t
compare_groups(void)
{
	struct xlate_count c;
	const struct prog *p;
	char err[256];
	size_t g, i, agree = 0;

	for (g = 0; g < ngroups; g++) {
		if (bpfsys_map_fetch(&groups[g].m, err, sizeof(err)) == -1) {
			kd_fail("%s", err);
			continue;
		}
		for (i = 0; i < groups[g].n; i++) {
			p = &progs[groups[g].prog[i]];
			bpfsys_map_get(&groups[g].m, (uint32_t)i, &c);
			if (c.packets == p->cpackets && c.bytes == p->cbytes) {
				agree++;
				continue;
			}
			kd_fail("%s: counted %ju packets of %ju bytes, the "
			    "kernel's filter accepted %ju of %ju", p->name,
			    (uintmax_t)c.packets, (uintmax_t)c.bytes,
			    (uintmax_t)p->cpackets, (uintmax_t)p->cbytes);
		}
	}
	return agree;
}

static void
show_frame(const struct frame *f, bool kernel)
{
	uint32_t i;

	printf("  | first packet they part on: %s (%u bytes): the kernel's "
	    "filter %s it, the translation %s\n", f->from, f->len,
	    kernel ? "accepted" : "rejected", kernel ? "rejected" :
	    "accepted");
	for (i = 0; i < f->len && i < 64; i++)
		printf("%s%02x%s", i % 16 ? "" : "  |   ", f->data[i],
		    i % 16 == 15 || i + 1 == f->len || i == 63 ? "\n" : " ");
}

/*
 * Send every frame again, one at a time, to name the first that each
 * program of BAD judged otherwise than the kernel. The other programs'
 * sockets are closed first: nothing else is served then.
 */
static void
trace(const size_t *bad, size_t nbad)
{
	uint64_t c, e, drops, base;
	bool found[SHOW_MAX] = { false };
	struct prog *p;
	size_t i, j, left = nbad;

	for (i = 0; i < ngroups; i++) {
		close(groups[i].fd);
		groups[i].fd = -1;
	}
	for (i = 0; i < nprogs; i++) {
		for (j = 0; j < nbad && bad[j] != i; j++)
			continue;
		if (j < nbad)
			continue;
		close(progs[i].cfd);
		close(progs[i].efd);
		progs[i].cfd = progs[i].efd = -1;
	}
	base = ref_seen;
	for (i = 0; i < nframes && left > 0; i++) {
		if (send_frame(&frames[i]) == -1 ||
		    wait_ref(base + i + 1) == -1)
			return;
		for (j = 0; j < nbad; j++) {
			p = &progs[bad[j]];
			c = e = drops = 0;
			read_stats(p->cfd, &c, &drops);
			read_stats(p->efd, &e, &drops);
			drain(p->cfd, NULL);
			drain(p->efd, NULL);
			if (c == e || found[j])
				continue;
			printf("  | %s:\n", p->name);
			show_frame(&frames[i], c > e);
			found[j] = true;
			left--;
		}
	}
}

/* ---- the run */

static void
print_tally(enum kind k)
{
	const struct tally *t = &tallies[k];
	unsigned i;

	printf("kdiff: %s: %u, %u compared; the kernel refused %u, the "
	    "translation %u more%s\n", kind_names[k], t->tried, t->compared,
	    t->kernel_refused, t->xlate_refused, t->xlate_refused ? ":" : "");
	for (i = 0; i < REASONS_MAX && t->reason[i][0] != '\0'; i++)
		printf("kdiff:   %5u %s\n", t->nreason[i], t->reason[i]);
	if (t->xlate_only != 0)
		printf("kdiff:   (of those the kernel refused, the translation "
		    "would have taken %u)\n", t->xlate_only);
}

/* The receiving interface's address and MTU. */
static int
read_iface(const char *name, unsigned *mtu)
{
	struct ifreq ifr;
	int fd, rc = -1;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) == 0) {
		memcpy(mac_rx, ifr.ifr_hwaddr.sa_data, 6);
		if (ioctl(fd, SIOCGIFMTU, &ifr) == 0) {
			*mtu = (unsigned)ifr.ifr_mtu;
			rc = 0;
		}
	}
	close(fd);
	return rc;
}

/* Sockets: many; raise the soft limit to the hard one. */
static void
more_files(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: kdiff -r recv-iface -t send-iface "
	    "[-c corpus] [-s seed] [-n random] [-m mutants]\n");
	exit(2);
}

/* Give back what a run took, so that a leak checker sees none. */
static void
release(struct bpf_program *base, size_t nbase)
{
	size_t i;

	for (i = 0; i < nframes; i++)
		free(frames[i].data);
	free(frames);
	for (i = 0; i < nprogs; i++) {
		free(progs[i].insns);
		if (progs[i].cfd != -1)
			close(progs[i].cfd);
		if (progs[i].efd != -1)
			close(progs[i].efd);
	}
	free(progs);
	for (i = 0; i < ngroups; i++) {
		if (groups[i].fd != -1)
			close(groups[i].fd);
		bpfsys_map_close(&groups[i].m);
	}
	free(groups);
	for (i = 0; i < nbase; i++)
		pcap_freecode(&base[i]);
	if (ref_fd != -1)
		close(ref_fd);
	if (tx_fd != -1)
		close(tx_fd);
}

/* Bind every socket: the reference one first, so it is served last. */
static int
bind_all(void)
{
	size_t i;

	if (bind_to(ref_fd, rx_index, ETH_P_ALL) == -1)
		return -1;
	for (i = 0; i < nprogs; i++)
		if (bind_to(progs[i].cfd, rx_index, ETH_P_ALL) == -1 ||
		    bind_to(progs[i].efd, rx_index, ETH_P_ALL) == -1)
			return -1;
	for (i = 0; i < ngroups; i++)
		if (bind_to(groups[i].fd, rx_index, ETH_P_ALL) == -1)
			return -1;
	return 0;
}

struct opts {
	const char	*rx, *tx, *corpus;
	unsigned	 nrandom, nmutants;
};

/* The frames, the programs and their sockets, bound; 0 or -1. */
static int
setup(const struct opts *o, struct bpf_program *base, size_t maxbase,
    size_t *nbase)
{
	unsigned mtu = 1500;

	more_files();
	if ((rx_index = if_nametoindex(o->rx)) == 0 ||
	    (tx_index = if_nametoindex(o->tx)) == 0 ||
	    read_iface(o->rx, &mtu) == -1) {
		kd_fail("%s, %s: %s", o->rx, o->tx, strerror(errno));
		return -1;
	}
	if (load_corpus(o->corpus) == -1)
		return -1;
	make_frames(mtu);
	if ((tx_fd = pkt_socket(SOCK_RAW)) == -1 ||
	    bind_to(tx_fd, tx_index, 0) == -1 ||
	    (ref_fd = pkt_socket(SOCK_RAW)) == -1)
		return -1;
	*nbase = add_libpcap(o->rx, o->corpus, base, maxbase);
	add_random(o->nrandom);
	add_mutants(base, *nbase, o->nmutants);
	add_groups();
	if (bind_all() == -1)
		return -1;
	printf("kdiff: %zu frames: %zu from the corpus's captures, %zu made "
	    "(every pkt_type, VLAN tags, IPv6, short, and up to %u bytes)\n",
	    nframes, ncorpus_frames, nframes - ncorpus_frames, mtu + ETH_HLEN);
	return 0;
}

/* Send, then hold every translation against the kernel's verdicts. */
static void
verdicts(const struct opts *o)
{
	size_t bad[SHOW_MAX], nbad, agree, split[3] = { 0, 0, 0 };
	double t0 = now_s();

	if (send_frames() == -1)
		return;
	nbad = compare(bad, SHOW_MAX, split);
	printf("kdiff: the kernel's verdicts: %zu programs accept some frames "
	    "and reject others, %zu accept every one, %zu none\n", split[0],
	    split[1], split[2]);
	agree = compare_groups();
	if (aux_missing != 0)
		kd_fail("%ju packets came without their auxiliary data",
		    (uintmax_t)aux_missing);
	if (tallies[K_CORPUS].compared == 0 ||
	    tallies[K_CORPUS].compared < tallies[K_CORPUS].tried)
		kd_fail("the corpus's filters must all translate: %u of %u did",
		    tallies[K_CORPUS].compared, tallies[K_CORPUS].tried);
	if (tallies[K_RANDOM].compared < o->nrandom / 4 ||
	    tallies[K_MUTANT].compared < o->nmutants / 4)
		kd_fail("too few programs compared: is something refusing them "
		    "all?");
	if (nbad == 0 && failures == 0)
		printf("PASS: kdiff: %zu programs accept what the kernel's "
		    "classic BPF accepts, on %zu frames (%.1f s)\n", nprogs,
		    nframes, now_s() - t0);
	if (agree == nprogs)
		printf("PASS: kdiff: the counting form, %zu programs of up to "
		    "%d filters, counts the packets and bytes the kernel's "
		    "filters accepted\n", ngroups, GROUP);
	if (nbad > 0)
		trace(bad, nbad);
}

int
main(int argc, char **argv)
{
	struct opts o = { NULL, NULL, "/work/shared/corpus", 400, 400 };
	unsigned long seed = (unsigned long)time(NULL) ^
	    (unsigned long)getpid();
	struct bpf_program base[128];
	size_t nbase = 0;
	double t0 = now_s();
	int c;

	while ((c = getopt(argc, argv, "c:m:n:r:s:t:")) != -1)
		switch (c) {
		case 'c':
			o.corpus = optarg;
			break;
		case 'm':
			o.nmutants = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			o.nrandom = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			o.rx = optarg;
			break;
		case 's':
			seed = strtoul(optarg, NULL, 10);
			break;
		case 't':
			o.tx = optarg;
			break;
		default:
			usage();
		}
	if (o.rx == NULL || o.tx == NULL || optind != argc)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	seed &= 0xffffffff;
	printf("kdiff: seed %lu (kdiff -s %lu repeats this run)\n", seed, seed);
	rng = (seed + 1) * 0x9e3779b97f4a7c15ULL;
	memset(base, 0, sizeof(base));
	if (setup(&o, base, sizeof(base) / sizeof(base[0]), &nbase) == 0) {
		printf("kdiff: %zu programs, each on two sockets, and %zu "
		    "counting programs; set up in %.1f s\n", nprogs, ngroups,
		    now_s() - t0);
		for (c = 0; c < K_KINDS; c++)
			print_tally((enum kind)c);
		verdicts(&o);
	}
	release(base, nbase);
	printf("kdiff: %.1f s in all\n", now_s() - t0);
	return failures != 0;
}
