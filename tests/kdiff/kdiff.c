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
 * bytes from each packet's length and VLAN tag as the socket got it. So
 * are families (xlate_build_chain() with a struct xlate_family): each
 * counter of a family's program against a classic socket running the
 * program it must count as, with members, constants listed more than
 * once, pins and plain filters; and xlate_family() against what xlate.h
 * says it must answer, on every pair tried.
 *
 * Usage: kdiff -r RECV -t SEND [-c CORPUS] [-s SEED] [-n RANDOM]
 *	      [-m MUTANTS] [-f FAMILIES]
 * RECV and SEND are the two ends of a veth pair, in a network namespace of
 * the test's own, that carry nothing else; an MTU of 9000 lets frames
 * larger than a page through, which the kernel keeps in paged data. SEED
 * repeats a run; RANDOM and MUTANTS are how many of each to make (400),
 * FAMILIES how many families of mutants (12).
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

#include <arpa/inet.h>
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
eth_from(struct fb *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	f->n = 0;
	fb_put(f, dst, 6);
	fb_put(f, src, 6);
	fb_u16(f, type);
}

static void
eth(struct fb *f, const uint8_t *dst, uint16_t type)
{
	eth_from(f, dst, mac_src, type);
}

static void
vlan(struct fb *f, uint16_t tci, uint16_t type)
{
	fb_u16(f, tci);
	fb_u16(f, type);
}

/*
 * An IPv4 header of IHL words (options of NOPs) from SRC to DST, then LEN
 * bytes of PROTO.
 */
static void
ipv4_at(struct fb *f, uint8_t proto, unsigned ihl, size_t len, uint16_t frag,
    uint32_t src, uint32_t dst)
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
	fb_u32(f, src);
	fb_u32(f, dst);
	for (i = 5; i < ihl; i++)
		fb_u32(f, 0x01010101);
}

static void
ipv4(struct fb *f, uint8_t proto, unsigned ihl, size_t len, uint16_t frag)
{
	ipv4_at(f, proto, ihl, len, frag, 0x0a000001, 0x0a000002);
}

static void
ipv6_at(struct fb *f, uint8_t next, size_t len, const uint8_t *src,
    const uint8_t *dst)
{
	fb_u32(f, 0x60000000);
	fb_u16(f, (uint16_t)len);
	fb_u8(f, next);
	fb_u8(f, 64);
	fb_put(f, src, 16);
	fb_put(f, dst, 16);
}

static const uint8_t ll1[16] = { 0xfe, 0x80, [15] = 1 };
static const uint8_t ll2[16] = { 0xfe, 0x80, [15] = 2 };

static void
ipv6(struct fb *f, uint8_t next, size_t len)
{
	ipv6_at(f, next, len, ll1, ll2);
}

static void
udp_ports(struct fb *f, uint16_t sport, uint16_t dport, size_t len)
{
	fb_u16(f, sport);
	fb_u16(f, dport);
	fb_u16(f, (uint16_t)(8 + len));
	fb_u16(f, 0);
	payload(f, len);
}

static void
udp(struct fb *f, uint16_t dport, size_t len)
{
	udp_ports(f, (uint16_t)(40000 + below(1000)), dport, len);
}

/* A TCP header of 5 words with FLAGS, then LEN bytes. */
static void
tcp_flags(struct fb *f, uint16_t sport, uint16_t dport, uint8_t flags,
    size_t len)
{
	fb_u16(f, sport);
	fb_u16(f, dport);
	fb_u32(f, rnd());
	fb_u32(f, rnd());
	fb_u8(f, 5 << 4);
	fb_u8(f, flags);
	fb_u16(f, 8192);
	fb_u32(f, 0);
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
		live = NULL;
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
	return n;		/* close live before sending: its socket sees it all */
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

/* ---- families: one program counts many members (xlate.h) */

/*
 * A family's program runs its skeleton once as if no site's test held,
 * looks what A held at each site up among the members' constants, and runs
 * the skeleton again with each constant it found, for the counters listed
 * under it. Each counter is held against a classic socket running the one
 * program it must count as: its member's own; where a pin moves it, the
 * program of the pinned constant; where a pin excludes it, the plain filter
 * in its place, or nothing. The families: libpcap's, a form like
 * `host %s` compiled with constants that the traffic holds and constants
 * it never does, and libpcap's programs with the constants of chosen JEQ
 * tests changed. What xlate_family() answers for each pair tried is held
 * against xlate.h's words, worked out here on their own.
 */
#define FAM_MAX		64	/* families built */
#define FAM_CLASSICS	20	/* programs one family's counters count as */
#define FAM_COUNTERS	32
#define FAM_MEMBERS	(FAM_COUNTERS - FAM_GUESTS - 1)	/* and a next link's */
#define FAM_LISTS	48	/* (constant, counter) pairs of a members map */
#define FAM_GUESTS	4	/* plain filters in a family's program */
#define FAM_VALUES	12	/* constants a form is compiled with */
#define VALUE_LEN	64

/* The fields of the traffic that members compare, and the values seen. */
enum field { F_IP4, F_TCP_PORT, F_UDP_PORT, F_PROTO, F_VLAN, F_MAC, F_IP6,
    F_FIELDS };

struct oval {
	uint64_t	hi, lo;		/* hi: IPv6's first 8 bytes */
	unsigned	n;		/* times seen */
};

struct field_seen {
	struct oval	*v;	/* after fields_sort(): each once, most seen first */
	size_t		 n, cap, nu;
};

static struct field_seen fields[F_FIELDS];

static void
see(enum field fl, uint64_t hi, uint64_t lo)
{
	struct field_seen *s = &fields[fl];
	struct oval *n;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		if ((n = realloc(s->v, s->cap * sizeof(*n))) == NULL)
			abort();
		s->v = n;
	}
	s->v[s->n++] = (struct oval){ hi, lo, 1 };
}

static uint64_t
get_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | *p++;
	return v;
}

static void
see_ports(uint8_t proto, const uint8_t *l4)
{
	enum field fl = proto == IPPROTO_TCP ? F_TCP_PORT : F_UDP_PORT;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return;
	see(fl, 0, get_be(l4, 2));
	see(fl, 0, get_be(l4 + 2, 2));
}

/* The fields of one frame as it is sent, VLAN tags still in it. */
static void
see_frame(const struct frame *fr)
{
	const uint8_t *p = fr->data;
	uint32_t len = fr->len, off = 14, ihl;
	uint16_t type = (uint16_t)get_be(p + 12, 2);

	see(F_MAC, 0, get_be(p, 6));
	see(F_MAC, 0, get_be(p + 6, 6));
	while ((type == ETH_P_8021Q || type == ETH_P_8021AD ||
	    type == 0x9100) && off + 4 <= len) {
		see(F_VLAN, 0, get_be(p + off, 2) & 0xfff);
		type = (uint16_t)get_be(p + off + 2, 2);
		off += 4;
	}
	p += off;
	len -= off;
	if (type == ETH_P_ARP && len >= 28) {
		see(F_IP4, 0, get_be(p + 14, 4));
		see(F_IP4, 0, get_be(p + 24, 4));
	} else if (type == ETH_P_IP && len >= 20) {
		ihl = (p[0] & 0xfu) * 4;
		see(F_PROTO, 0, p[9]);
		see(F_IP4, 0, get_be(p + 12, 4));
		see(F_IP4, 0, get_be(p + 16, 4));
		if ((get_be(p + 6, 2) & 0x1fff) == 0 && ihl >= 20 &&
		    len >= ihl + 4)
			see_ports(p[9], p + ihl);
	} else if (type == ETH_P_IPV6 && len >= 40) {
		see(F_IP6, get_be(p + 8, 8), get_be(p + 16, 8));
		see(F_IP6, get_be(p + 24, 8), get_be(p + 32, 8));
		if (len >= 44)
			see_ports(p[6], p + 40);
	}
}

static int
oval_by_value(const void *a, const void *b)
{
	const struct oval *x = a, *y = b;

	if (x->hi != y->hi)
		return x->hi < y->hi ? -1 : 1;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int
oval_by_count(const void *a, const void *b)
{
	const struct oval *x = a, *y = b;

	if (x->n != y->n)
		return x->n > y->n ? -1 : 1;
	return oval_by_value(a, b);
}

/* Each value once, with the times it was seen, most seen first. */
static void
fields_sort(void)
{
	struct field_seen *s;
	size_t i, u;

	for (s = fields; s < fields + F_FIELDS; s++) {
		if (s->n == 0)
			continue;
		qsort(s->v, s->n, sizeof(*s->v), oval_by_value);
		for (i = 1, u = 0; i < s->n; i++)
			if (oval_by_value(&s->v[u], &s->v[i]) == 0)
				s->v[u].n += s->v[i].n;
			else
				s->v[++u] = s->v[i];
		s->n = s->nu = u + 1;
		qsort(s->v, s->n, sizeof(*s->v), oval_by_count);
	}
}

/* The Ith most seen value of FL, or DFLT. */
static struct oval
top(enum field fl, size_t i, uint64_t dflt)
{
	struct oval none = { 0, dflt, 0 };

	return i < fields[fl].nu ? fields[fl].v[i] : none;
}

/*
 * Frames for the families: the constants of two members in one packet,
 * one constant at two sites, the constant of all ones, ARP, VLAN tags,
 * SCTP, a fragment, IPv6 and MAC addresses that differ from the corpus's
 * in one half.
 */
static void
make_family_frames(void)
{
	uint32_t a = (uint32_t)top(F_IP4, 0, 0xc0a80101).lo;
	uint32_t b = (uint32_t)top(F_IP4, 1, 0x0a000003).lo;
	uint32_t c = (uint32_t)top(F_IP4, 2, 0x0a000004).lo;
	uint16_t tp = (uint16_t)top(F_TCP_PORT, 0, 80).lo;
	uint16_t up = (uint16_t)top(F_UDP_PORT, 0, 53).lo;
	struct oval six = top(F_IP6, 0, 1), mac = top(F_MAC, 0, 0x020000000001);
	uint8_t s6[16], d6[16], m1[6], m2[6];
	struct fb f;
	unsigned i;

	if (six.n == 0)
		six.hi = 0xfe80000000000000ULL;
	for (i = 0; i < 8; i++) {
		s6[i] = d6[i] = (uint8_t)(six.hi >> (56 - 8 * i));
		s6[8 + i] = d6[8 + i] = (uint8_t)(six.lo >> (56 - 8 * i));
	}
	memset(d6 + 12, 0xff, 4);
	for (i = 0; i < 6; i++)
		m1[i] = m2[i] = (uint8_t)(mac.lo >> (40 - 8 * i));
	m1[0] ^= 0x04;		/* the high 16 bits differ */
	m2[5] ^= 0x5a;		/* the low 32 */
	eth(&f, mac_rx, ETH_P_IP);
	ipv4_at(&f, IPPROTO_UDP, 5, 8 + 20, 0, a, b);
	udp_ports(&f, up, up, 20);
	made(&f, "families: UDP between two hosts, one port");
	eth(&f, mac_rx, ETH_P_IP);
	ipv4_at(&f, IPPROTO_TCP, 5, 20 + 4, 0, a, a);
	tcp_flags(&f, tp, tp, 0x02, 4);
	made(&f, "families: TCP SYN from a host to itself");
	eth(&f, mac_other, ETH_P_IP);
	ipv4_at(&f, IPPROTO_TCP, 5, 20, 0, b, c);
	tcp_flags(&f, 40001, tp, 0x02, 0);
	made(&f, "families: TCP SYN");
	eth(&f, mac_other, ETH_P_IP);
	ipv4_at(&f, IPPROTO_TCP, 5, 20, 0, c, b);
	tcp_flags(&f, tp, 40001, 0x10, 0);
	made(&f, "families: TCP ACK");
	eth(&f, mac_bcast, ETH_P_IP);
	ipv4_at(&f, IPPROTO_UDP, 5, 8 + 40, 0, 0, 0xffffffff);
	udp_ports(&f, 68, 67, 40);
	made(&f, "families: UDP from 0.0.0.0 to 255.255.255.255");
	eth(&f, mac_bcast, ETH_P_ARP);
	fb_u32(&f, 0x00010800);
	fb_u32(&f, 0x06040001);
	fb_put(&f, mac_src, 6);
	fb_u32(&f, a);
	fb_put(&f, mac_bcast, 6);
	fb_u32(&f, c);
	made(&f, "families: ARP between two hosts");
	eth(&f, mac_rx, ETH_P_8021Q);
	vlan(&f, 100, ETH_P_IP);
	ipv4_at(&f, IPPROTO_TCP, 5, 20, 0, a, b);
	tcp_flags(&f, 40002, tp, 0x02, 0);
	made(&f, "families: 802.1Q VLAN 100, TCP SYN");
	eth(&f, mac_other, ETH_P_8021Q);
	vlan(&f, 0x2fff, ETH_P_IP);
	ipv4_at(&f, IPPROTO_UDP, 5, 8 + 8, 0, c, a);
	udp_ports(&f, 40003, up, 8);
	made(&f, "families: 802.1Q VLAN 4095, UDP");
	eth(&f, mac_other, ETH_P_IP);
	ipv4_at(&f, IPPROTO_GRE, 5, 24, 0, a, c);
	payload(&f, 24);
	made(&f, "families: GRE");
	eth(&f, mac_other, ETH_P_IP);
	ipv4_at(&f, IPPROTO_SCTP, 5, 12 + 16, 0, b, a);
	fb_u16(&f, tp);
	fb_u16(&f, up);
	payload(&f, 8 + 16);
	made(&f, "families: SCTP");
	eth(&f, mac_other, ETH_P_IP);
	ipv4_at(&f, IPPROTO_TCP, 5, 20, 185, a, b);
	fb_u16(&f, tp);
	fb_u16(&f, tp);
	payload(&f, 16);
	made(&f, "families: a TCP fragment, ports in its data");
	eth(&f, mac_other, ETH_P_IPV6);
	ipv6_at(&f, IPPROTO_UDP, 8 + 12, s6, s6);
	udp_ports(&f, up, up, 12);
	made(&f, "families: IPv6 UDP from a host to itself");
	eth(&f, mac_rx, ETH_P_IPV6);
	ipv6_at(&f, IPPROTO_TCP, 20, d6, s6);
	tcp_flags(&f, 40004, tp, 0x02, 0);
	made(&f, "families: IPv6 TCP SYN from ::ffff:ffff");
	eth_from(&f, m1, m2, ETH_P_IP);
	ipv4_at(&f, IPPROTO_UDP, 5, 8 + 8, 0, b, a);
	udp_ports(&f, 40005, up, 8);
	made(&f, "families: MAC addresses that differ in one half");
}

/* What a form's constant is, and how it is written. */
enum vkind {
	V_IP4, V_NET24, V_NET16, V_TCP_PORT, V_UDP_PORT, V_PORT, V_PROTO,
	V_VLAN, V_MAC, V_MAC_LO, V_MAC_HI, V_IP6, V_IP6_LO
};

/*
 * libpcap's forms. The first two constants of each decide whether it is a
 * family: the most seen value and one never seen. Some are not: a MAC or
 * an IPv6 address whose halves both differ is two constants; a negation
 * accepts where no test holds; a range compares with JGT.
 */
static const struct form {
	const char	*fmt;		/* one %s: the constant */
	enum vkind	 vk;
} forms[] = {
	{ "host %s", V_IP4 },
	{ "src host %s", V_IP4 },
	{ "dst host %s", V_IP4 },
	{ "ip host %s and udp", V_IP4 },
	{ "udp port 53 or host %s", V_IP4 },
	{ "net %s/24", V_NET24 },
	{ "dst net %s/16", V_NET16 },
	{ "tcp port %s", V_TCP_PORT },
	{ "udp port %s", V_UDP_PORT },
	{ "port %s", V_PORT },
	{ "tcp dst port %s and tcp[13] & 2 != 0", V_TCP_PORT },
	{ "vlan %s", V_VLAN },
	{ "ip proto %s", V_PROTO },
	{ "ether host %s", V_MAC },
	{ "ether host %s", V_MAC_LO },
	{ "ether host %s", V_MAC_HI },
	{ "ip6 host %s", V_IP6 },
	{ "ip6 host %s", V_IP6_LO },
	{ "not host %s", V_IP4 },
	{ "host %s or tcp port 80", V_IP4 },
	{ "tcp portrange 1-%s", V_TCP_PORT },
};

static enum field
vk_field(enum vkind vk)
{
	switch (vk) {
	case V_IP4: case V_NET24: case V_NET16:
		return F_IP4;
	case V_TCP_PORT: case V_PORT:
		return F_TCP_PORT;
	case V_UDP_PORT:
		return F_UDP_PORT;
	case V_PROTO:
		return F_PROTO;
	case V_VLAN:
		return F_VLAN;
	case V_MAC: case V_MAC_LO: case V_MAC_HI:
		return F_MAC;
	default:
		return F_IP6;
	}
}

/* V as a constant of VK, beside REF, the most seen: false if it is none. */
static bool
vk_map(enum vkind vk, struct oval ref, struct oval *v)
{
	switch (vk) {
	case V_NET24:
		v->lo &= 0xffffff00;
		break;
	case V_NET16:
		v->lo &= 0xffff0000;
		break;
	case V_MAC_LO:		/* the same high 16 bits: sites test the low 32 */
		return v->lo >> 32 == ref.lo >> 32;
	case V_MAC_HI:
		return (v->lo & 0xffffffff) == (ref.lo & 0xffffffff);
	case V_IP6_LO:		/* the same but for the last 32 bits */
		return v->hi == ref.hi && v->lo >> 32 == ref.lo >> 32;
	default:
		break;
	}
	return true;
}

/* A random constant of VK (beside REF where VK says). */
static struct oval
vk_random(enum vkind vk, struct oval ref)
{
	struct oval v = { 0, 0, 0 };

	switch (vk) {
	case V_IP4: case V_NET24: case V_NET16:
		v.lo = below(2) ? 0xc0000200u | below(256) : rnd();
		break;
	case V_TCP_PORT: case V_UDP_PORT: case V_PORT:
		v.lo = 1 + below(65535);
		break;
	case V_PROTO:
		v.lo = below(256);
		break;
	case V_VLAN:
		v.lo = 1 + below(4094);
		break;
	case V_MAC:
		v.lo = (uint64_t)(rnd() & 0xfeff) << 32 | rnd();
		break;
	case V_MAC_LO:
		v.lo = (ref.lo & 0xffff00000000ULL) | rnd();
		break;
	case V_MAC_HI:
		v.lo = (uint64_t)(rnd() & 0xfeff) << 32 | (ref.lo & 0xffffffff);
		break;
	case V_IP6:
		v.hi = 0x20010db800000000ULL | rnd();
		v.lo = (uint64_t)rnd() << 32 | rnd();
		break;
	case V_IP6_LO:
		v.hi = ref.hi;
		v.lo = (ref.lo & ~0xffffffffULL) | rnd();
		break;
	}
	vk_map(vk, ref, &v);
	return v;
}

static void
vk_format(enum vkind vk, struct oval v, char *out, size_t n)
{
	uint8_t a[16];
	unsigned i;

	switch (vk) {
	case V_IP4: case V_NET24: case V_NET16:
		snprintf(out, n, "%u.%u.%u.%u", (unsigned)(v.lo >> 24) & 0xff,
		    (unsigned)(v.lo >> 16) & 0xff, (unsigned)(v.lo >> 8) & 0xff,
		    (unsigned)v.lo & 0xff);
		break;
	case V_MAC: case V_MAC_LO: case V_MAC_HI:
		for (i = 0; i < 6; i++)
			a[i] = (uint8_t)(v.lo >> (40 - 8 * i));
		snprintf(out, n, "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1],
		    a[2], a[3], a[4], a[5]);
		break;
	case V_IP6: case V_IP6_LO:
		for (i = 0; i < 8; i++) {
			a[i] = (uint8_t)(v.hi >> (56 - 8 * i));
			a[8 + i] = (uint8_t)(v.lo >> (56 - 8 * i));
		}
		inet_ntop(AF_INET6, a, out, (socklen_t)n);
		break;
	default:
		snprintf(out, n, "%ju", (uintmax_t)v.lo);
	}
}

static bool
oval_in(const struct oval *v, size_t n, struct oval x)
{
	while (n-- > 0)
		if (oval_by_value(&v[n], &x) == 0)
			return true;
	return false;
}

/* Every value seen of VK, most seen first; how many, in *N. */
static struct oval *
vk_seen(enum vkind vk, size_t *n)
{
	const struct field_seen *s = &fields[vk_field(vk)], *u = NULL;
	struct oval *all, v, ref;
	size_t i, cap;

	if (vk == V_PORT)
		u = &fields[F_UDP_PORT];
	cap = s->nu + (u ? u->nu : 0) + 1;
	if ((all = calloc(cap, sizeof(*all))) == NULL)
		abort();
	ref = top(vk_field(vk), 0, 0);
	*n = 0;
	for (i = 0; i < cap - 1; i++) {
		v = i < s->nu ? s->v[i] : u->v[i - s->nu];
		if (vk_map(vk, ref, &v) && !oval_in(all, *n, v))
			all[(*n)++] = v;
	}
	return all;
}

/*
 * The constants a form is compiled with: the most seen value, one never
 * seen, more of those seen (the four most, one at random of the rest),
 * the edges, another never seen.
 */
static size_t
form_values(enum vkind vk, char vals[][VALUE_LEN], bool *seen, size_t max)
{
	struct oval pick[FAM_VALUES], v, ref = top(vk_field(vk), 0, 0);
	struct oval *all;
	size_t nall, n = 0, i, step, tries;

	all = vk_seen(vk, &nall);
	for (step = 0; step < 9 && n < max && n < FAM_VALUES; step++) {
		v.n = 1;
		switch (step) {
		case 1: case 8:
			for (tries = 0; tries < 100; tries++) {
				v = vk_random(vk, ref);
				if (!oval_in(all, nall, v))
					break;
			}
			v.n = tries < 100;
			break;
		case 0: case 2: case 3: case 5:
			i = step == 0 ? 0 : step < 5 ? step - 1 : 3;
			v = i < nall ? all[i] : (struct oval){ 0, 0, 0 };
			break;
		case 6:
			v = nall > 4 ? all[4 + below((uint32_t)(nall - 4))] :
			    (struct oval){ 0, 0, 0 };
			break;
		case 4:		/* in the frames made for the families */
			v = (struct oval){ 0, 0xffffffff, 1 };
			if (vk == V_IP6_LO)
				v = (struct oval){ ref.hi, ref.lo | 0xffffffff,
				    1 };
			else if (vk == V_VLAN)
				v.lo = 4095;
			else if (vk != V_IP4)
				v.n = 0;
			break;
		default:
			v.n = 0;
		}
		if (v.n == 0 || oval_in(pick, n, v))
			continue;
		pick[n] = v;
		seen[n] = step != 1 && step != 8;
		vk_format(vk, v, vals[n++], VALUE_LEN);
	}
	free(all);
	return n;
}

/* ---- families: what xlate.h says of them, worked out on its own */

enum fwhy {
	W_FAMILY, W_SAME, W_SHAPE, W_NOT_JEQ, W_ONE_WAY, W_TWO_CONSTANTS,
	W_SITES, W_ACCEPTS, W_KINDS
};

static const char *fwhy_names[W_KINDS] = {
	"a family", "the same program", "not one program",
	"a constant differs outside a JEQ test",
	"a JEQ test whose two ways are one", "two constants in one program",
	"more sites than XLATE_SITES_MAX", "accepts where no site test holds",
};

/* Per instruction: reached when every site's test fails. */
static void
collect_path(const struct sock_filter *f, unsigned len, const uint8_t *site,
    uint8_t *reach)
{
	unsigned pc, t, e;

	memset(reach, 0, len);
	reach[0] = 1;
	for (pc = 0; pc < len; pc++) {
		if (!reach[pc] || BPF_CLASS(f[pc].code) == BPF_RET)
			continue;
		if (BPF_CLASS(f[pc].code) != BPF_JMP) {
			t = e = pc + 1;
		} else if (BPF_OP(f[pc].code) == BPF_JA) {
			t = e = pc + 1 + f[pc].k;
		} else {
			t = pc + 1 + f[pc].jt;
			e = pc + 1 + f[pc].jf;
			if (site[pc] != 0)
				t = e;
		}
		if (t < len)
			reach[t] = 1;
		if (e < len)
			reach[e] = 1;
	}
}

static bool
accepts(const struct sock_filter *in)
{
	return BPF_CLASS(in->code) == BPF_RET &&
	    (BPF_RVAL(in->code) == BPF_A || in->k != 0);
}

/*
 * Whether F and G of LEN instructions are a family, by xlate.h: SITE as
 * xlate_family() must fill it, or why they are not.
 */
static enum fwhy
family_expect(const struct sock_filter *f, const struct sock_filter *g,
    unsigned len, uint8_t *site, uint8_t *reach)
{
	unsigned pc, first = 0, n = 0;

	memset(site, 0, len);
	for (pc = 0; pc < len; pc++) {
		if (f[pc].code != g[pc].code || f[pc].jt != g[pc].jt ||
		    f[pc].jf != g[pc].jf)
			return W_SHAPE;
		if (f[pc].k == g[pc].k)
			continue;
		if (f[pc].code != (BPF_JMP | BPF_JEQ | BPF_K))
			return W_NOT_JEQ;
		if (f[pc].jt == f[pc].jf)
			return W_ONE_WAY;
		if (n == XLATE_SITES_MAX)
			return W_SITES;
		if (n == 0)
			first = pc;
		else if (f[pc].k != f[first].k || g[pc].k != g[first].k)
			return W_TWO_CONSTANTS;
		site[pc] = (uint8_t)++n;
	}
	if (n == 0)
		return W_SAME;
	collect_path(f, len, site, reach);
	for (pc = 0; pc < len; pc++)
		if (reach[pc] && accepts(&f[pc]))
			return W_ACCEPTS;
	return W_FAMILY;
}

/* xlate_family_key(), by xlate.h. */
static bool
member_expect(const struct sock_filter *skel, const uint8_t *site,
    const struct sock_filter *f, unsigned len, uint32_t *key)
{
	unsigned pc;
	bool seen = false;

	for (pc = 0; pc < len; pc++) {
		if (f[pc].code != skel[pc].code || f[pc].jt != skel[pc].jt ||
		    f[pc].jf != skel[pc].jf)
			return false;
		if (site[pc] == 0 && f[pc].k != skel[pc].k)
			return false;
		if (site[pc] != 0 && seen && f[pc].k != *key)
			return false;
		if (site[pc] != 0 && !seen) {
			*key = f[pc].k;
			seen = true;
		}
	}
	return seen;
}

/* The member of SKEL's family whose constant is KEY. */
static void
family_subst(struct sock_filter *out, const struct sock_filter *skel,
    const uint8_t *site, unsigned len, uint32_t key)
{
	unsigned pc;

	memcpy(out, skel, len * sizeof(*out));
	for (pc = 0; pc < len; pc++)
		if (site[pc] != 0)
			out[pc].k = key;
}

/* ---- families: the programs and their sockets */

/* One program a family's counters count as, on a classic socket. */
struct fclassic {
	struct sock_filter	*insns;
	unsigned		 len;
	uint32_t		 key;		/* its constant */
	bool			 guest;		/* no member: a plain filter */
	bool			 seen;		/* its constant is in the traffic */
	char			 name[120];
	int			 fd;
	uint64_t		 packets, drops;
	uint64_t		 drained, lens, vlans;	/* what it queued */
};

struct family {
	char			 name[120];
	int			 type;		/* SOCK_RAW or SOCK_DGRAM */
	struct xlate_wire	 wire;
	struct sock_filter	*skel;
	unsigned		 len;
	uint8_t			*site;
	unsigned		 nsites;
	struct fclassic		 cl[FAM_CLASSICS];
	size_t			 ncl;
	int			 member[FAM_COUNTERS];	/* classics; repeats */
	size_t			 nmember;
	int			 guest[FAM_GUESTS];	/* classics */
	size_t			 nguests;
};

/* What one counter of a family's program must count as. */
struct fcounter {
	int			 classic;	/* -1: nothing */
	char			 role[320];
	uint64_t		 traced;	/* packets, while tracing */
};

/* One program of a family on a packet socket: its map, its pins. */
struct fprog {
	struct family		*fam;
	const char		*what;
	struct fcounter		 c[FAM_COUNTERS];
	uint32_t		 n;
	struct {
		uint32_t	 key, index;
	}			 list[FAM_LISTS];	/* the members map */
	size_t			 nlist;
	struct xlate_pin	 pin[8];
	size_t			 npins;
	struct xlate_filter	 guest[FAM_GUESTS + 1];
	size_t			 nguests;
	struct xlate_filter	 next;		/* the chain's next link's; len 0: none */
	struct bpfsys_map	 m;
	int			 hash, progs, fd;
};

static struct family *fams[FAM_MAX];
static size_t nfams;
static struct fprog *fprogs[2 * FAM_MAX];
static size_t nfprogs;

/* What became of the families. */
static struct {
	unsigned	 forms, families, guests, members, repeats, shapes;
	unsigned	 counters, pinned, excluded;
	unsigned	 pairs, why[W_KINDS], built, variants, widest;
	char		 fam_forms[700], plain_forms[900], shaped[300];
} ftally;

static const struct xlate_wire wires[] = {
	{ 0, 4 }, { 16, 4 }, { 20, 0 }, { 0, 0 }, { XLATE_WIRE_MAX,
	XLATE_WIRE_MAX },
};

static void
show_insns(const struct sock_filter *f, unsigned len, const uint8_t *site)
{
	unsigned i;

	for (i = 0; i < len; i++)
		if (site != NULL && site[i] != 0)
			printf("  | %-40s  <- site %u\n", bpf_image((const struct
			    pcap_bpf_insn *)&f[i], (int)i), site[i]);
		else
			printf("  | %s\n", bpf_image((const struct
			    pcap_bpf_insn *)&f[i], (int)i));
}

/* A family of SKEL and SITE, one in four on SOCK_DGRAM sockets. */
static struct family *
fam_new(const char *name, const struct sock_filter *skel, unsigned len,
    const uint8_t *site)
{
	struct family *fam;
	unsigned pc;

	if (nfams == FAM_MAX)
		return NULL;
	if ((fam = calloc(1, sizeof(*fam))) == NULL ||
	    (fam->skel = malloc(len * sizeof(*skel))) == NULL ||
	    (fam->site = malloc(len)) == NULL)
		abort();
	strlcpy(fam->name, name, sizeof(fam->name));
	fam->type = nfams % 4 == 3 ? SOCK_DGRAM : SOCK_RAW;
	fam->wire = wires[below(sizeof(wires) / sizeof(wires[0]))];
	memcpy(fam->skel, skel, len * sizeof(*skel));
	memcpy(fam->site, site, len);
	fam->len = len;
	for (pc = 0; pc < len; pc++)
		fam->nsites += site[pc] != 0;
	fams[nfams++] = fam;
	return fam;
}

static void
fam_free(struct family *fam)
{
	size_t i;

	for (i = 0; i < fam->ncl; i++) {
		if (fam->cl[i].fd != -1)
			close(fam->cl[i].fd);
		free(fam->cl[i].insns);
	}
	free(fam->skel);
	free(fam->site);
	free(fam);
}

/* The last family made, unmade: it has too few members. */
static void
fam_drop(struct family *fam)
{
	if (nfams > 0 && fams[nfams - 1] == fam)
		nfams--;
	fam_free(fam);
}

/*
 * A classic socket of FAM's type running F: its index in FAM's classics,
 * shared by the members of one constant; -1 after saying why not.
 */
static int
fam_classic(struct family *fam, const struct sock_filter *f, unsigned len,
    uint32_t key, bool guest, const char *name)
{
	struct sock_fprog fp = { (unsigned short)len,
	    (struct sock_filter *)(uintptr_t)f };
	struct fclassic *c;
	size_t i;
	int one = 1;

	for (i = 0; i < fam->ncl && !guest; i++)
		if (!fam->cl[i].guest && fam->cl[i].key == key)
			return (int)i;
	if (fam->ncl == FAM_CLASSICS)
		return -1;
	c = &fam->cl[fam->ncl];
	memset(c, 0, sizeof(*c));
	if ((c->fd = pkt_socket(fam->type)) == -1)
		return -1;
	if (setsockopt(c->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp,
	    sizeof(fp)) == -1) {
		kd_fail("family %s: the kernel refuses '%s': %s", fam->name,
		    name, strerror(errno));
		close(c->fd);
		return -1;
	}
	setsockopt(c->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
	if ((c->insns = malloc(len * sizeof(*f))) == NULL)
		abort();
	memcpy(c->insns, f, len * sizeof(*f));
	c->len = len;
	c->key = key;
	c->guest = guest;
	strlcpy(c->name, name, sizeof(c->name));
	return (int)fam->ncl++;
}

/*
 * F, named NAME, as a member of FAM, if xlate_family_key() says it is one
 * (and it must say what xlate.h does): its classic, or -1.
 */
static int
fam_member(struct family *fam, const struct sock_filter *f, unsigned len,
    const char *name, bool seen)
{
	uint32_t key = 0, mine = 0;
	bool fits, expect;
	int c;

	fits = len == fam->len && xlate_family_key(fam->skel, fam->site, f,
	    len, &key) == 0;
	expect = len == fam->len && member_expect(fam->skel, fam->site, f,
	    len, &mine);
	if (fits != expect || (fits && key != mine)) {
		kd_fail("family %s: xlate_family_key() says '%s' is %s "
		    "(constant %#x); by xlate.h it is %s (constant %#x)",
		    fam->name, name, fits ? "a member" : "no member", key,
		    expect ? "one" : "none", mine);
		show_insns(f, len, fam->site);
		return -1;
	}
	if (!fits) {
		ftally.shapes++;
		key = (unsigned)strlen(ftally.shaped);
		snprintf(ftally.shaped + key, sizeof(ftally.shaped) - key,
		    "%s'%s'", key ? ", " : "", name);
		return -1;
	}
	if (fam->nmember == FAM_MEMBERS ||
	    (c = fam_classic(fam, f, len, key, false, name)) == -1)
		return -1;
	fam->cl[c].seen |= seen;
	fam->member[fam->nmember++] = c;
	ftally.members++;
	return c;
}

/* Counter I of the members again, N times: constants listed twice and more. */
static void
fam_repeat(struct family *fam, size_t i, unsigned n)
{
	while (n-- > 0 && i < fam->nmember &&
	    fam->nmember < FAM_MEMBERS) {
		fam->member[fam->nmember++] = fam->member[i];
		ftally.repeats++;
	}
}

static struct fprog *
fprog_new(struct family *fam, const char *what)
{
	struct fprog *fp;

	if ((fp = calloc(1, sizeof(*fp))) == NULL)
		abort();
	fp->fam = fam;
	fp->what = what;
	fp->hash = fp->progs = fp->fd = fp->m.fd = -1;
	return fp;
}

static void
fprog_free(struct fprog *fp)
{
	if (fp->fd != -1)
		close(fp->fd);
	if (fp->hash != -1)
		close(fp->hash);
	if (fp->progs != -1)
		close(fp->progs);
	bpfsys_map_close(&fp->m);
	free(fp);
}

/* A new counter of FP that must count as classic C (-1: nothing). */
static uint32_t	fprog_counter(struct fprog *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static uint32_t
fprog_counter(struct fprog *fp, int c, const char *fmt, ...)
{
	struct fcounter *fc = &fp->c[fp->n];
	va_list ap;

	if (fp->n == FAM_COUNTERS)
		abort();

	fc->classic = c;
	va_start(ap, fmt);
	vsnprintf(fc->role, sizeof(fc->role), fmt, ap);
	va_end(ap);
	return fp->n++;
}

/* How many counters FP lists under KEY. */
static unsigned
fprog_listed(const struct fprog *fp, uint32_t key)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < fp->nlist; i++)
		n += fp->list[i].key == key;
	return n;
}

static void
fprog_list(struct fprog *fp, uint32_t key, uint32_t index)
{
	if (fp->nlist < FAM_LISTS && fprog_listed(fp, key) < XLATE_MEMBERS_MAX)
		fp->list[fp->nlist++] = (typeof(fp->list[0])){ key, index };
}

/* FP's members map and pins, as they were. */
static void
fprog_show(const struct fprog *fp)
{
	const struct family *fam = fp->fam;
	size_t i, j;

	printf("  | family %s, its program of %s: %u sites, on a %s socket; "
	    "wire length: + %u, + %u more with a VLAN tag taken out\n",
	    fam->name, fp->what, fam->nsites, fam->type == SOCK_DGRAM ?
	    "SOCK_DGRAM" : "SOCK_RAW", fam->wire.hdr_len, fam->wire.vlan_len);
	for (i = 0; i < fp->nlist; i++) {
		for (j = 0; j < i && fp->list[j].key != fp->list[i].key; j++)
			;
		if (j < i)
			continue;
		printf("  |   members map: %#x ->", fp->list[i].key);
		for (j = i; j < fp->nlist; j++)
			if (fp->list[j].key == fp->list[i].key)
				printf(" %u", fp->list[j].index);
		printf("\n");
	}
	for (i = 0; i < fp->npins; i++)
		if (fp->pin[i].excluded)
			printf("  |   pin: counter %u excluded\n",
			    fp->pin[i].index);
		else
			printf("  |   pin: counter %u under %#x only\n",
			    fp->pin[i].index, fp->pin[i].key);
	for (i = 0; i < fp->nguests; i++)
		printf("  |   plain filter: counter %u\n", fp->guest[i].index);
	if (fp->next.len != 0)
		printf("  |   the next link of the chain: a plain filter, "
		    "counter %u\n", fp->next.index);
}

/* FP's members map, filled. */
static int
fprog_map(struct fprog *fp, char *err, size_t errlen)
{
	struct xlate_members mem;
	size_t i, j, n;

	for (i = 0; i < fp->nlist; i++) {
		for (j = 0; j < i && fp->list[j].key != fp->list[i].key; j++)
			;
		if (j < i)
			continue;
		memset(&mem, 0xff, sizeof(mem));
		for (n = 0, j = i; j < fp->nlist; j++)
			if (fp->list[j].key == fp->list[i].key)
				mem.index[n++] = (uint16_t)fp->list[j].index;
		if (bpfsys_elem(fp->hash, BPFSYS_SET, fp->list[i].key, &mem,
		    err, errlen) == -1)
			return -1;
	}
	return 0;
}

/* Link AT of FP's chain: its FILTERS, FAM if not NULL, then link AT + 1. */
static int
fprog_link(struct fprog *fp, uint32_t at, const struct xlate_filter *filters,
    size_t n, const struct xlate_family *fam, char *err, size_t errlen)
{
	struct xlate_prog xp;
	int pfd, rc;

	if (xlate_build_chain(filters, n, fp->m.fd, fp->m.slots,
	    &fp->fam->wire, fam, fp->progs, at + 1, &xp, err, errlen) == -1)
		return -1;
	pfd = bpfsys_prog_load(&xp, err, errlen);
	xlate_free(&xp);
	if (pfd == -1)
		return -1;
	rc = bpfsys_progs_set(fp->progs, at, pfd, err, errlen);
	close(pfd);
	return rc;
}

/*
 * FP's program, as the daemon builds a family's link: its map, the members
 * map, the program at index 0 of a program array (and a plain link after
 * it, if FP has one), and on a packet socket the head that tail-calls it.
 * Kept in fprogs[], or freed.
 */
static int
fprog_load(struct fprog *fp)
{
	struct family *fam = fp->fam;
	struct xlate_family xf = { fam->skel, fam->len, fam->site, -1,
	    fp->pin, fp->npins };
	struct xlate_prog xp;
	char err[1024] = "";
	int pfd = -1;

	if (bpfsys_map_create(&fp->m, fp->n, err, sizeof(err)) == -1 ||
	    (fp->hash = bpfsys_hash_create(sizeof(struct xlate_members),
	    FAM_LISTS, err, sizeof(err))) == -1 ||
	    fprog_map(fp, err, sizeof(err)) == -1 ||
	    (fp->progs = bpfsys_progs_create(3, err, sizeof(err))) == -1)
		goto bad;
	xf.members_fd = fp->hash;
	if ((fp->next.len != 0 && fprog_link(fp, 1, &fp->next, 1, NULL, err,
	    sizeof(err)) == -1) || fprog_link(fp, 0, fp->guest, fp->nguests,
	    &xf, err, sizeof(err)) == -1)
		goto bad;
	if (xlate_build_head(fp->progs, &xp, err, sizeof(err)) == -1)
		goto bad;
	pfd = bpfsys_prog_load(&xp, err, sizeof(err));
	xlate_free(&xp);
	if (pfd == -1 || (fp->fd = pkt_socket(fam->type)) == -1 ||
	    bpfsys_attach(fp->fd, pfd, err, sizeof(err)) == -1)
		goto bad;
	close(pfd);
	fprogs[nfprogs++] = fp;
	return 0;
bad:
	kd_fail("family %s, its program of %s: %s", fam->name, fp->what, err);
	fprog_show(fp);
	show_insns(fam->skel, fam->len, fam->site);
	if (pfd != -1)
		close(pfd);
	fprog_free(fp);
	return -1;
}

/*
 * Every member under its constant, and the guests: plain filters; then a
 * link of its own counts the first member's program as a plain filter.
 */
static void
fam_plan_members(struct family *fam)
{
	struct fprog *fp = fprog_new(fam, "members");
	const struct fclassic *c;
	uint32_t i, idx;

	for (i = 0; i < fam->nmember; i++) {
		c = &fam->cl[fam->member[i]];
		idx = fprog_counter(fp, fam->member[i], "member '%s'",
		    c->name);
		fprog_list(fp, c->key, idx);
	}
	for (i = 0; i < fam->nguests; i++) {
		c = &fam->cl[fam->guest[i]];
		idx = fprog_counter(fp, fam->guest[i], "plain filter '%s'",
		    c->name);
		fp->guest[fp->nguests++] = (struct xlate_filter){ c->insns,
		    c->len, idx };
	}
	c = &fam->cl[fam->member[0]];
	idx = fprog_counter(fp, fam->member[0], "the chain's next link: plain "
	    "filter '%s'", c->name);
	fp->next = (struct xlate_filter){ c->insns, c->len, idx };
	ftally.counters += fp->n;
	ftally.guests += fam->nguests + 1;
	if (fprog_load(fp) == -1)
		ftally.counters -= fp->n;
}

/*
 * A classic of FAM's members other than C, listed fewer than 8 times in
 * FP: one the traffic holds, of a constant of 2^31 or more when there is
 * one (an eBPF compare with an immediate extends its sign); -1 if none.
 */
static int
fam_other(const struct family *fam, const struct fprog *fp, int c)
{
	const struct fclassic *o;
	int best = -1, score, top = -1;
	size_t i;

	for (i = 0; i < fam->nmember; i++) {
		o = &fam->cl[fam->member[i]];
		if (fam->member[i] == c ||
		    fprog_listed(fp, o->key) >= XLATE_MEMBERS_MAX)
			continue;
		score = 2 * o->seen + (o->key >= 0x80000000u);
		if (score > top) {
			top = score;
			best = fam->member[i];
		}
	}
	return best;
}

/*
 * A counter of FAM's members not in USED, now in it: one whose constant
 * the traffic holds if SEEN (else one it does not, if any), of a program
 * no other in USED counts as if possible; -1 if none.
 */
static int
fam_pick(const struct family *fam, bool *used, bool seen)
{
	int best = -1, score, top = -1;
	size_t i, j;
	bool other;

	for (i = 0; i < fam->nmember; i++) {
		if (used[i])
			continue;
		for (j = 0, other = true; j < fam->nmember; j++)
			other &= !used[j] || fam->member[j] != fam->member[i];
		score = 2 * (fam->cl[fam->member[i]].seen == seen) + other;
		if (score > top) {
			top = score;
			best = (int)i;
		}
	}
	if (best != -1)
		used[best] = true;
	return best;
}

/*
 * A second program of FAM, with pins, as the daemon has while a member
 * moves: a counter listed under its constant and another's, pinned to the
 * other (it counts as that member); another likewise, pinned to its own;
 * one excluded (it counts nothing); one excluded with a plain filter in
 * its place (it counts as that filter). The members pinned are of
 * constants the traffic holds, but for the last.
 */
static void
fam_plan_pins(struct family *fam)
{
	struct fprog *fp = fprog_new(fam, "pins");
	const struct fclassic *cl = fam->cl;
	bool used[FAM_COUNTERS] = { false };
	uint32_t i;
	int o, c, k;

	for (i = 0; i < fam->nmember; i++) {
		fprog_counter(fp, fam->member[i], "member '%s'",
		    cl[fam->member[i]].name);
		fprog_list(fp, cl[fam->member[i]].key, i);
	}
	if ((k = fam_pick(fam, used, true)) != -1 &&
	    (o = fam_other(fam, fp, c = fam->member[k])) != -1) {
		fprog_list(fp, cl[o].key, (uint32_t)k);
		fp->pin[fp->npins++] = (struct xlate_pin){ (uint32_t)k,
		    cl[o].key, false };
		fp->c[k].classic = o;
		snprintf(fp->c[k].role, sizeof(fp->c[k].role), "member "
		    "'%.100s', listed under %#x too and pinned to it: as "
		    "'%.100s'", cl[c].name, cl[o].key, cl[o].name);
	}
	if ((k = fam_pick(fam, used, true)) != -1 &&
	    (o = fam_other(fam, fp, c = fam->member[k])) != -1) {
		fprog_list(fp, cl[o].key, (uint32_t)k);
		fp->pin[fp->npins++] = (struct xlate_pin){ (uint32_t)k,
		    cl[c].key, false };
		snprintf(fp->c[k].role, sizeof(fp->c[k].role), "member "
		    "'%.100s', listed under %#x too, pinned to its own",
		    cl[c].name, cl[o].key);
	}
	if ((k = fam_pick(fam, used, true)) != -1) {
		fp->pin[fp->npins++] = (struct xlate_pin){ (uint32_t)k, 0,
		    true };
		fp->c[k].classic = -1;
		snprintf(fp->c[k].role, sizeof(fp->c[k].role), "member "
		    "'%.100s', excluded: nothing", cl[fam->member[k]].name);
		ftally.excluded++;
	}
	if ((k = fam_pick(fam, used, false)) != -1 &&
	    (o = fam->nguests > 0 ? fam->guest[0] :
	    fam_other(fam, fp, c = fam->member[k])) != -1) {
		c = fam->member[k];
		fp->pin[fp->npins++] = (struct xlate_pin){ (uint32_t)k, 0,
		    true };
		fp->guest[fp->nguests++] = (struct xlate_filter){
		    cl[o].insns, cl[o].len, (uint32_t)k };
		fp->c[k].classic = o;
		snprintf(fp->c[k].role, sizeof(fp->c[k].role), "member "
		    "'%.100s', excluded, the plain filter '%.100s' in its "
		    "place", cl[c].name, cl[o].name);
		ftally.excluded++;
	}
	ftally.pinned += (unsigned)fp->npins;
	ftally.counters += fp->n;
	if (fprog_load(fp) == -1)
		ftally.counters -= fp->n;
}

/* ---- families: from libpcap's forms */

/* Programs of forms that are no family, for the families' plain filters. */
static struct bpf_program plain_progs[2 * sizeof(forms) / sizeof(forms[0])];
static char plain_names[2 * sizeof(forms) / sizeof(forms[0])][VALUE_LEN + 40];
static size_t nplain;

static void
tally_form(char *list, size_t size, const char *fmt, const char *what)
{
	size_t n = strlen(list);

	snprintf(list + n, size - n, "%s'%s' (%s)", n ? ", " : "", fmt, what);
}

/*
 * Whether xlate_family() says of F and G what xlate.h says: NAME them in
 * a failure. Fills SITE. Their verdict by xlate.h.
 */
static enum fwhy
family_check(const char *name, const struct sock_filter *f,
    const struct sock_filter *g, unsigned len, uint8_t *site)
{
	uint8_t *mine, *reach;
	enum fwhy why;
	int rc;

	if ((mine = malloc(len)) == NULL || (reach = malloc(len)) == NULL)
		abort();
	why = family_expect(f, g, len, mine, reach);
	rc = xlate_family(f, g, len, site);
	ftally.pairs++;
	ftally.why[why]++;
	if ((rc == 0) != (why == W_FAMILY)) {
		kd_fail("%s: xlate_family() says %s; by xlate.h, %s", name,
		    rc == 0 ? "a family" : "no family", fwhy_names[why]);
		show_insns(f, len, why == W_FAMILY ? mine : NULL);
		printf("  | and\n");
		show_insns(g, len, why == W_FAMILY ? mine : NULL);
	} else if (rc == 0 && memcmp(mine, site, len) != 0) {
		kd_fail("%s: xlate_family() and xlate.h differ on the sites",
		    name);
		show_insns(f, len, site);
		printf("  | where xlate.h has\n");
		show_insns(f, len, mine);
	}
	free(mine);
	free(reach);
	return (rc == 0) == (why == W_FAMILY) ? why : W_KINDS;
}

static int
compile(const char *expr, struct bpf_program *bp)
{
	if (pcap_compile(live, bp, expr, 1, PCAP_NETMASK_UNKNOWN) == 0)
		return 0;
	printf("kdiff: '%s' does not compile: %s\n", expr, pcap_geterr(live));
	return -1;
}

/*
 * Form FO with its constants: a family when its first two programs are,
 * its members those that fit (each constant's first; some twice, one
 * eight times); else its first two are plain filters of other families.
 */
static void
form_family(const struct form *fo)
{
	char vals[FAM_VALUES][VALUE_LEN], expr[FAM_VALUES][VALUE_LEN + 40];
	struct bpf_program bp[FAM_VALUES];
	bool seen[FAM_VALUES];
	struct family *fam = NULL;
	uint8_t *site = NULL;
	enum fwhy why = W_SHAPE;
	size_t n, i, nbp = 0;

	n = form_values(fo->vk, vals, seen, FAM_VALUES);
	memset(bp, 0, sizeof(bp));
	for (i = 0; i < n; i++) {
		snprintf(expr[i], sizeof(expr[i]), fo->fmt, vals[i]);
		if (compile(expr[i], &bp[i]) == -1)
			bp[i].bf_insns = NULL;
		nbp = i + 1;
	}
	ftally.forms++;
	if (n < 2 || bp[0].bf_insns == NULL || bp[1].bf_insns == NULL)
		goto out;
	if ((site = malloc(bp[0].bf_len)) == NULL)
		abort();
	if (bp[0].bf_len == bp[1].bf_len)
		why = family_check(expr[0], (struct sock_filter *)
		    bp[0].bf_insns, (struct sock_filter *)bp[1].bf_insns,
		    bp[0].bf_len, site);
	if (why != W_FAMILY) {
		tally_form(ftally.plain_forms, sizeof(ftally.plain_forms),
		    fo->fmt, why == W_KINDS ? "xlate_family() says no" :
		    fwhy_names[why]);
		for (i = 0; i < 2 && nplain < sizeof(plain_progs) /
		    sizeof(plain_progs[0]); i++) {
			plain_progs[nplain] = bp[i];
			strlcpy(plain_names[nplain++], expr[i],
			    sizeof(plain_names[0]));
			bp[i].bf_insns = NULL;
		}
		goto out;
	}
	if ((fam = fam_new(fo->fmt, (struct sock_filter *)bp[0].bf_insns,
	    bp[0].bf_len, site)) == NULL)
		goto out;
	for (i = 0; i < n; i++)
		if (bp[i].bf_insns != NULL)
			fam_member(fam, (struct sock_filter *)bp[i].bf_insns,
			    bp[i].bf_len, expr[i], seen[i]);
	if (fam->nmember < 2) {
		fam_drop(fam);
		goto out;
	}
	fam_repeat(fam, nfams == 1 ? 0 : 2, nfams == 1 ?
	    XLATE_MEMBERS_MAX - 1 : 1);
	ftally.families++;
	n = strlen(ftally.fam_forms);
	snprintf(ftally.fam_forms + n, sizeof(ftally.fam_forms) - n,
	    "%s'%s' (%u sites)", n ? ", " : "", fo->fmt, fam->nsites);
out:
	for (i = 0; i < nbp; i++)
		if (bp[i].bf_insns != NULL)
			pcap_freecode(&bp[i]);
	free(site);
}

/* ---- families: libpcap's programs with constants changed */

/*
 * Values A holds at the JEQ at PC when a fixed load (and a mask) comes
 * just before it: the most seen in a sample of the frames, most first.
 */
static size_t
site_values(const struct sock_filter *f, unsigned pc, uint32_t *vals,
    size_t max)
{
	struct oval seenv[64];
	const struct sock_filter *ld;
	uint32_t mask = 0xffffffff, v, size;
	size_t n = 0, i, j;

	if (pc < 1)
		return 0;
	ld = &f[pc - 1];
	if (ld->code == (BPF_ALU | BPF_AND | BPF_K) && pc >= 2) {
		mask = ld->k;
		ld = &f[pc - 2];
	}
	if (BPF_CLASS(ld->code) != BPF_LD || BPF_MODE(ld->code) != BPF_ABS ||
	    ld->k > 0xffff)
		return 0;
	size = BPF_SIZE(ld->code) == BPF_W ? 4 : BPF_SIZE(ld->code) == BPF_H ?
	    2 : 1;
	for (i = 0; i < 256 && nframes > 0; i++) {
		const struct frame *fr = &frames[below((uint32_t)nframes)];

		if (ld->k + size > fr->len)
			continue;
		v = (uint32_t)get_be(fr->data + ld->k, size) & mask;
		for (j = 0; j < n && seenv[j].lo != v; j++)
			;
		if (j < n)
			seenv[j].n++;
		else if (n < 64)
			seenv[n++] = (struct oval){ 0, v, 1 };
	}
	qsort(seenv, n, sizeof(seenv[0]), oval_by_count);
	for (i = 0; i < n && i < max; i++)
		vals[i] = (uint32_t)seenv[i].lo;
	return i;
}

/*
 * The constants of a mutated family at the JEQ at PC, which compares C0:
 * mostly what A holds there (marked in SEEN), C0 itself, and others.
 */
static size_t
mutant_values(const struct sock_filter *f, unsigned pc, uint32_t *vals,
    bool *seen, size_t max)
{
	uint32_t c0 = f[pc].k, v, cand[4];
	size_t n, i, j;
	bool t;

	n = site_values(f, pc, vals, max - 2);
	for (i = 0; i < max; i++)
		seen[i] = i < n;
	cand[0] = c0;
	cand[1] = c0 ^ 1;
	cand[2] = below(2) ? 0xffffffffu : 0x80000000u | rnd();
	cand[3] = rnd();
	for (i = 0; i < 4 && n < max; i++) {
		v = cand[i];
		for (j = 0; j < n && vals[j] != v; j++)
			;
		if (j == n)
			vals[n++] = v;
	}
	if (below(2)) {		/* c0 first: the program as libpcap made it */
		for (j = 0; vals[j] != c0; j++)
			;
		vals[j] = vals[0];
		vals[0] = c0;
		t = seen[j];
		seen[j] = seen[0];
		seen[0] = t;
	}
	return n;
}

/*
 * A family that must be refused: M0 and M1 with a return that is reached
 * where no site's test holds made to accept. xlate_family() must say no,
 * and a family program of the skeleton must not be built.
 */
static void
check_accepting(const struct sock_filter *m0, const struct sock_filter *m1,
    unsigned len, const uint8_t *site)
{
	struct sock_filter *v0, *v1;
	struct xlate_family xf;
	struct xlate_prog xp;
	uint8_t *reach, *s;
	unsigned pc, n = 0, pick;
	char err[512];

	if ((v0 = malloc(len * sizeof(*v0))) == NULL ||
	    (v1 = malloc(len * sizeof(*v1))) == NULL ||
	    (reach = malloc(len)) == NULL || (s = malloc(len)) == NULL)
		abort();
	collect_path(m0, len, site, reach);
	for (pc = 0; pc < len; pc++)
		n += reach[pc] && BPF_CLASS(m0[pc].code) == BPF_RET;
	pick = below(n ? n : 1);
	memcpy(v0, m0, len * sizeof(*v0));
	memcpy(v1, m1, len * sizeof(*v1));
	for (pc = 0; pc < len; pc++) {
		if (!reach[pc] || BPF_CLASS(m0[pc].code) != BPF_RET ||
		    pick-- != 0)
			continue;
		v0[pc] = v1[pc] = below(2) ? (struct sock_filter)BPF_STMT(
		    BPF_RET | BPF_A, 0) : (struct sock_filter)BPF_STMT(
		    BPF_RET | BPF_K, 1 + below(0xffff));
		break;
	}
	if (family_check("a family made to accept where no site test holds",
	    v0, v1, len, s) == W_FAMILY)
		kd_fail("the family made to accept is still one by xlate.h");
	xf = (struct xlate_family){ v0, len, site, -1, NULL, 0 };
	if (xlate_build_chain(NULL, 0, -1, 1, NULL, &xf, -1, 0, &xp, err,
	    sizeof(err)) == 0) {
		kd_fail("xlate_build_chain() built a family program that "
		    "accepts where no site test holds");
		show_insns(v0, len, site);
		xlate_free(&xp);
	}
	ftally.variants++;
	free(v0);
	free(v1);
	free(reach);
	free(s);
}

/* The JEQ|K instructions of F, in JEQ; how many. */
static unsigned
jeq_tests(const struct sock_filter *f, unsigned len, unsigned *jeq)
{
	unsigned pc, n = 0;

	for (pc = 0; pc < len; pc++)
		if (f[pc].code == (BPF_JMP | BPF_JEQ | BPF_K))
			jeq[n++] = pc;
	return n;
}

/*
 * The sites of a mutant family of F: the JEQ at PC and, all or some, the
 * others that compare its constant; at times a test of another constant
 * too (then the members compare one constant where F compared two), or
 * every JEQ test of F (more than XLATE_SITES_MAX, in some).
 */
static void
mutant_sites(const struct sock_filter *f, unsigned len, const unsigned *jeq,
    unsigned njeq, unsigned pc, uint8_t *sel)
{
	bool all = below(2), every = below(10) == 0;
	unsigned i;

	memset(sel, 0, len);
	sel[pc] = 1;
	for (i = 0; i < njeq; i++)
		if (every || (f[jeq[i]].k == f[pc].k && (all || below(2))))
			sel[jeq[i]] = 1;
	if (below(6) == 0)
		sel[jeq[below(njeq)]] = 1;
}

/* Now and then, a site's two ways made one, in every member of M. */
static void
mutant_one_way(struct sock_filter **m, size_t n, unsigned len,
    const uint8_t *sel)
{
	unsigned pc = below(len), i;
	size_t j;

	if (below(16) != 0)
		return;
	for (i = 0; i < len && !sel[(pc + i) % len]; i++)
		;
	pc = (pc + i) % len;
	for (j = 0; j < n; j++)
		m[j][pc].jt = m[j][pc].jf;
}

/*
 * A pair that is no family, now and then: M1 with a second constant at
 * one site, a constant changed outside a JEQ test, or a test's ways
 * swapped.
 */
static void
mutant_spoil(struct sock_filter *m1, unsigned len, const uint8_t *sel)
{
	unsigned pc = below(len), i;

	switch (below(12)) {
	case 0:
		for (i = 0; i < len && !sel[(pc + i) % len]; i++)
			;
		m1[(pc + i) % len].k ^= 0x10;
		break;
	case 1:
		if (BPF_CLASS(m1[pc].code) != BPF_RET && !sel[pc])
			m1[pc].k += 1;
		break;
	case 2:
		if (BPF_CLASS(m1[pc].code) == BPF_JMP &&
		    BPF_OP(m1[pc].code) != BPF_JA) {
			uint8_t t = m1[pc].jt;

			m1[pc].jt = m1[pc].jf;
			m1[pc].jf = t;
		}
		break;
	}
}

/* A family of the members M[0..N), each of LEN; kept if two fit. */
static void
mutant_family(const char *name, struct sock_filter **m, const bool *seen,
    size_t n, unsigned len, const uint8_t *site)
{
	struct family *fam;
	char mname[120];
	unsigned first;
	size_t i;

	if (xlate_check(m[0], len, mname, sizeof(mname)) == -1 ||
	    (fam = fam_new(name, m[0], len, site)) == NULL)
		return;
	for (first = 0; first < len && site[first] == 0; first++)
		;
	for (i = 0; i < n; i++) {
		snprintf(mname, sizeof(mname), "%.70s, constant %#x", name,
		    m[i][first].k);
		fam_member(fam, m[i], len, mname, seen[i]);
	}
	if (fam->nmember < 2) {
		fam_drop(fam);
		return;
	}
	fam_repeat(fam, below((uint32_t)fam->nmember), 1);
	ftally.built++;
}

/*
 * Pairs of mutants of the programs in BASE, each held against xlate.h;
 * of the families, WANT are built with up to 6 members each.
 */
static void
add_mutant_families(const struct bpf_program *base, size_t nbase,
    unsigned want)
{
	struct sock_filter *m[6];
	uint32_t vals[6];
	bool seen[6];
	unsigned *jeq, njeq, len, tries, pc;
	uint8_t *sel, *site;
	char name[120];
	size_t b, i, n;

	if (nbase == 0)
		return;
	for (i = 0; i < 6; i++)
		if ((m[i] = malloc(XLATE_FILTER_INSNS_MAX * sizeof(*m[i]))) ==
		    NULL)
			abort();
	if ((jeq = malloc(XLATE_FILTER_INSNS_MAX * sizeof(*jeq))) == NULL ||
	    (sel = malloc(XLATE_FILTER_INSNS_MAX)) == NULL ||
	    (site = malloc(XLATE_FILTER_INSNS_MAX)) == NULL)
		abort();
	for (tries = 0; tries < 400 + 20 * want; tries++) {
		b = below((uint32_t)nbase);
		len = base[b].bf_len;
		if ((njeq = jeq_tests((const struct sock_filter *)
		    base[b].bf_insns, len, jeq)) == 0)
			continue;
		pc = jeq[below(njeq)];
		mutant_sites((const struct sock_filter *)base[b].bf_insns, len,
		    jeq, njeq, pc, sel);
		n = mutant_values((const struct sock_filter *)base[b].bf_insns,
		    pc, vals, seen, 6);
		for (i = 0; i < n; i++)
			family_subst(m[i], (const struct sock_filter *)
			    base[b].bf_insns, sel, len, vals[i]);
		mutant_one_way(m, n, len, sel);
		mutant_spoil(m[1], len, sel);
		snprintf(name, sizeof(name), "mutant of program %zu at "
		    "(%03u)", b, pc);
		if (family_check(name, m[0], m[1], len, site) != W_FAMILY)
			continue;
		check_accepting(m[0], m[1], len, site);
		if (ftally.built < want)
			mutant_family(name, m, seen, n, len, site);
	}
	for (i = 0; i < 6; i++)
		free(m[i]);
	free(jeq);
	free(sel);
	free(site);
}

/*
 * A program of N sites: whether any of N words from byte 26 on (IPv4's
 * addresses and ports, in an Ethernet frame) is C. The members at
 * XLATE_SITES_MAX, a family refused past it.
 */
static void
add_wide_family(unsigned n)
{
	struct sock_filter f[2 * 20 + 2], g[2 * 20 + 2], *m[6];
	uint32_t vals[6];
	bool seen[6];
	unsigned i, len = 2 * n + 2;
	uint8_t site[2 * 20 + 2];
	char name[64];
	size_t nv, j;

	for (i = 0; i < n; i++) {
		f[2 * i] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    26 + 2 * i);
		f[2 * i + 1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		    BPF_K, 0, (uint8_t)(2 * (n - i) - 1), 0);
	}
	f[2 * n] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0);
	f[2 * n + 1] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0x40000);
	nv = mutant_values(f, 1, vals, seen, 6);
	for (j = 0; j < 6; j++)
		if ((m[j] = malloc(len * sizeof(*f))) == NULL)
			abort();
	for (j = 0; j < nv; j++) {
		memcpy(m[j], f, len * sizeof(*f));
		for (i = 0; i < n; i++)
			m[j][2 * i + 1].k = vals[j];
	}
	memcpy(g, m[1], len * sizeof(*f));
	snprintf(name, sizeof(name), "%u sites: a word from byte 26 on", n);
	j = nfams;
	if (nv >= 2 && family_check(name, m[0], g, len, site) == W_FAMILY)
		mutant_family(name, m, seen, nv, len, site);
	if (nfams > j)
		ftally.widest = n;
	for (j = 0; j < 6; j++)
		free(m[j]);
}

/*
 * The families: of libpcap's forms, on the live handle, and of mutants;
 * each with a program of its members and one with pins.
 */
static void
add_families(const struct bpf_program *base, size_t nbase, unsigned want)
{
	struct family *fam;
	size_t i, g = 0, nlib;

	for (i = 0; i < nframes; i++)
		see_frame(&frames[i]);
	fields_sort();
	i = nframes;
	make_family_frames();
	for (; i < nframes; i++)
		see_frame(&frames[i]);
	fields_sort();
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		form_family(&forms[i]);
	nlib = nfams;
	add_wide_family(XLATE_SITES_MAX);
	add_wide_family(XLATE_SITES_MAX + 1);
	add_mutant_families(base, nbase, want);
	for (i = 0; i < nplain && nlib > 0; i++) {
		fam = fams[g++ % nlib];
		if (fam->nguests < FAM_GUESTS && (fam->guest[fam->nguests] =
		    fam_classic(fam, (struct sock_filter *)
		    plain_progs[i].bf_insns, plain_progs[i].bf_len, 0, true,
		    plain_names[i])) != -1)
			fam->nguests++;
	}
	for (i = 0; i < nplain; i++)
		pcap_freecode(&plain_progs[i]);
	for (i = 0; i < nfams; i++) {
		fam_plan_members(fams[i]);
		fam_plan_pins(fams[i]);
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
 * Take what FD queued, without blocking: how many packets. With LENS, add
 * the length each had, as the filter saw it, and to VLANS, how many had a
 * VLAN tag that the kernel took out.
 */
static uint64_t
drain_aux(int fd, uint64_t *lens, uint64_t *vlans)
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
			msg[i].msg_hdr.msg_control = lens ? ctl[i] : NULL;
			msg[i].msg_hdr.msg_controllen = lens ? sizeof(ctl[i]) :
			    0;
		}
		got = recvmmsg(fd, msg, BATCH, MSG_DONTWAIT, NULL);
		for (i = 0; i < got && lens != NULL; i++) {
			seen = false;
			for (c = CMSG_FIRSTHDR(&msg[i].msg_hdr); c != NULL;
			    c = CMSG_NXTHDR(&msg[i].msg_hdr, c)) {
				if (c->cmsg_level != SOL_PACKET ||
				    c->cmsg_type != PACKET_AUXDATA)
					continue;
				memcpy(&aux, CMSG_DATA(c), sizeof(aux));
				*lens += aux.tp_len;
				*vlans += (aux.tp_status &
				    TP_STATUS_VLAN_VALID) != 0;
				seen = true;
			}
			aux_missing += !seen;
		}
		if (got > 0)
			n += (uint64_t)got;
	} while (got == BATCH);
	return n;
}

/*
 * Take what FD queued: how many packets. With BYTES, add their wire
 * lengths, 4 for a VLAN tag the kernel took out as xlate_build() counts
 * by default.
 */
static uint64_t
drain(int fd, uint64_t *bytes)
{
	uint64_t lens = 0, vlans = 0, n;

	n = drain_aux(fd, bytes ? &lens : NULL, &vlans);
	if (bytes != NULL)
		*bytes += lens + 4 * vlans;
	return n;
}

static void
drain_all(void)
{
	struct fclassic *c;
	size_t i, j;

	for (i = 0; i < nprogs; i++) {
		if (progs[i].cfd != -1)
			drain(progs[i].cfd, &progs[i].cbytes);
		if (progs[i].efd != -1)
			drain(progs[i].efd, NULL);
	}
	for (i = 0; i < nfams; i++)
		for (j = 0; j < fams[i]->ncl; j++) {
			c = &fams[i]->cl[j];
			if (c->fd != -1)
				c->drained += drain_aux(c->fd, &c->lens,
				    &c->vlans);
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

/* ---- families: the verdicts */

/* F's first 64 bytes. */
static void
show_bytes(const struct frame *f)
{
	uint32_t i;

	for (i = 0; i < f->len && i < 64; i++)
		printf("%s%02x%s", i % 16 ? "" : "  |   ", f->data[i],
		    i % 16 == 15 || i + 1 == f->len || i == 63 ? "\n" : " ");
}

struct fbad {
	struct fprog	*fp;
	uint32_t	 index;
};

/* What counter I of FP must count: the packets and bytes of its classic. */
static void
fam_expect(const struct fprog *fp, uint32_t i, struct xlate_count *want)
{
	const struct fclassic *c;

	want->packets = want->bytes = 0;
	if (fp->c[i].classic < 0)
		return;
	c = &fp->fam->cl[fp->c[i].classic];
	want->packets = c->packets;
	want->bytes = c->lens + c->drained * fp->fam->wire.hdr_len +
	    c->vlans * fp->fam->wire.vlan_len;
}

/* The program counter I of FP must count as, or its member's. */
static const struct fclassic *
fam_program(const struct fprog *fp, uint32_t i)
{
	const struct family *fam = fp->fam;

	if (fp->c[i].classic >= 0)
		return &fam->cl[fp->c[i].classic];
	return &fam->cl[fam->member[i]];
}

/* Every counter of every family's program, against its classic socket. */
static size_t
compare_families(struct fbad *bad, size_t max, size_t *nbad)
{
	struct xlate_count got, want;
	const struct fclassic *p;
	struct fclassic *c;
	struct fprog *fp;
	char err[256];
	size_t i, j, agree = 0;

	for (i = 0; i < nfams; i++)
		for (j = 0; j < fams[i]->ncl; j++) {
			c = &fams[i]->cl[j];
			read_stats(c->fd, &c->packets, &c->drops);
			if (c->drops != 0)
				kd_fail("family %s, '%s': %ju packets dropped",
				    fams[i]->name, c->name,
				    (uintmax_t)c->drops);
		}
	for (i = 0; i < nfprogs; i++) {
		fp = fprogs[i];
		if (bpfsys_map_fetch(&fp->m, err, sizeof(err)) == -1) {
			kd_fail("%s", err);
			continue;
		}
		for (j = 0; j < fp->n; j++) {
			bpfsys_map_get(&fp->m, (uint32_t)j, &got);
			fam_expect(fp, (uint32_t)j, &want);
			if (got.packets == want.packets &&
			    got.bytes == want.bytes) {
				agree++;
				continue;
			}
			kd_fail("family %s, its program of %s: counter %zu, %s: "
			    "counted %ju packets of %ju bytes, the kernel's "
			    "filter %ju of %ju", fp->fam->name, fp->what, j,
			    fp->c[j].role, (uintmax_t)got.packets,
			    (uintmax_t)got.bytes, (uintmax_t)want.packets,
			    (uintmax_t)want.bytes);
			fprog_show(fp);
			p = fam_program(fp, (uint32_t)j);
			printf("  | the program of '%s':\n", p->name);
			show_insns(p->insns, p->len, p->guest ? NULL :
			    fp->fam->site);
			if (*nbad < max)
				bad[(*nbad)++] = (struct fbad){ fp, (uint32_t)j };
		}
	}
	return agree;
}

/* Before a trace: close what BAD does not need, and note where it was. */
static void
fam_trace_start(const struct fbad *bad, size_t nbad)
{
	struct xlate_count got;
	struct fclassic *c;
	uint64_t drops = 0, n = 0;
	char err[256];
	size_t i, j, k;
	bool keep;

	for (i = 0; i < nfprogs; i++) {
		for (j = 0; j < nbad && bad[j].fp != fprogs[i]; j++)
			;
		if (j == nbad && fprogs[i]->fd != -1) {
			close(fprogs[i]->fd);
			fprogs[i]->fd = -1;
		}
	}
	for (i = 0; i < nfams; i++)
		for (k = 0; k < fams[i]->ncl; k++) {
			c = &fams[i]->cl[k];
			for (j = 0, keep = false; j < nbad; j++)
				keep |= bad[j].fp->fam == fams[i] &&
				    bad[j].fp->c[bad[j].index].classic ==
				    (int)k;
			if (keep) {
				read_stats(c->fd, &n, &drops);
				drain(c->fd, NULL);
			} else if (c->fd != -1) {
				close(c->fd);
				c->fd = -1;
			}
		}
	for (j = 0; j < nbad; j++) {
		bpfsys_map_fetch(&bad[j].fp->m, err, sizeof(err));
		bpfsys_map_get(&bad[j].fp->m, bad[j].index, &got);
		bad[j].fp->c[bad[j].index].traced = got.packets;
	}
}

/*
 * After frame FR: the packets each counter of BAD counted and its classic
 * accepted; those that part on it for the first time named, and marked
 * in FOUND. How many.
 */
static size_t
fam_trace_step(const struct fbad *bad, size_t nbad, bool *found,
    const struct frame *fr)
{
	uint64_t kernel[SHOW_MAX], drops = 0, counted;
	struct xlate_count got;
	struct fcounter *fc;
	struct fclassic *c;
	char err[256];
	size_t j, k, n = 0;

	for (j = 0; j < nbad; j++) {
		kernel[j] = 0;
		fc = &bad[j].fp->c[bad[j].index];
		for (k = 0; k < j; k++)
			if (bad[k].fp->fam == bad[j].fp->fam &&
			    bad[k].fp->c[bad[k].index].classic == fc->classic)
				break;
		if (k < j) {
			kernel[j] = kernel[k];
		} else if (fc->classic >= 0) {
			c = &bad[j].fp->fam->cl[fc->classic];
			read_stats(c->fd, &kernel[j], &drops);
			drain(c->fd, NULL);
		}
		bpfsys_map_fetch(&bad[j].fp->m, err, sizeof(err));
		bpfsys_map_get(&bad[j].fp->m, bad[j].index, &got);
		counted = got.packets - fc->traced;
		fc->traced = got.packets;
		if (counted == kernel[j] || found[j])
			continue;
		printf("  | family %s, its program of %s, counter %u: the "
		    "first packet they part on: %s (%u bytes): counted %ju "
		    "times, the kernel's filter accepted it %ju times\n",
		    bad[j].fp->fam->name, bad[j].fp->what, bad[j].index,
		    fr->from, fr->len, (uintmax_t)counted,
		    (uintmax_t)kernel[j]);
		show_bytes(fr);
		found[j] = true;
		n++;
	}
	return n;
}

/* Whether the families covered what they must; WANT mutants were asked. */
static void
fam_coverage(unsigned want)
{
	if (ftally.families == 0 || ftally.built < want / 2)
		kd_fail("too few families: %u of libpcap's forms, %u of "
		    "mutants (%u asked)", ftally.families, ftally.built, want);
	if (ftally.why[W_ACCEPTS] == 0 || ftally.variants == 0)
		kd_fail("no pair that accepts where no site test holds was "
		    "held against xlate_family()");
	if (ftally.widest != XLATE_SITES_MAX || ftally.why[W_SITES] == 0)
		kd_fail("no family of XLATE_SITES_MAX sites, or none refused "
		    "past it");
	if (nfprogs > 0 && (ftally.pinned == 0 || ftally.excluded == 0 ||
	    ftally.repeats == 0))
		kd_fail("no pins, no exclusions or no constant listed twice");
}

static void
print_families(void)
{
	unsigned i;

	printf("kdiff: families of libpcap's forms: %u forms; %u families: "
	    "%s\n", ftally.forms, ftally.families, ftally.fam_forms);
	printf("kdiff:   no family: %s\n", ftally.plain_forms);
	printf("kdiff: families of mutants: %u built, the widest of %u "
	    "sites; %u pairs held against xlate.h (%u made to accept where no "
	    "site test holds):\n", ftally.built, ftally.widest, ftally.pairs,
	    ftally.variants);
	for (i = 0; i < W_KINDS; i++)
		if (ftally.why[i] != 0)
			printf("kdiff:   %5u %s\n", ftally.why[i], fwhy_names[i]);
	printf("kdiff: %zu family programs on %zu families: %u counters: "
	    "%u members (%u more constants listed twice or more), %u "
	    "plain filters, %u pins (%u excluding); %u programs of another "
	    "shape%s%s\n", nfprogs, nfams, ftally.counters, ftally.members,
	    ftally.repeats, ftally.guests, ftally.pinned, ftally.excluded,
	    ftally.shapes, ftally.shapes ? ": " : "", ftally.shaped);
}

static void
show_frame(const struct frame *f, bool kernel)
{

	printf("  | first packet they part on: %s (%u bytes): the kernel's "
	    "filter %s it, the translation %s\n", f->from, f->len,
	    kernel ? "accepted" : "rejected", kernel ? "rejected" :
	    "accepted");
	show_bytes(f);
}

/*
 * Send every frame again, one at a time, to name the first that each
 * program of BAD judged otherwise than the kernel, and each family counter
 * of FBAD counted otherwise. The other programs' sockets are closed first:
 * nothing else is served then.
 */
static void
trace(const size_t *bad, size_t nbad, const struct fbad *fbad, size_t nfbad)
{
	uint64_t c, e, drops, base;
	bool found[SHOW_MAX] = { false }, ffound[SHOW_MAX] = { false };
	struct prog *p;
	size_t i, j, left = nbad + nfbad;

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
	fam_trace_start(fbad, nfbad);
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
		left -= fam_trace_step(fbad, nfbad, ffound, &frames[i]);
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
	    "[-c corpus] [-s seed] [-n random] [-m mutants] [-f families]\n");
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
	for (i = 0; i < nfprogs; i++)
		fprog_free(fprogs[i]);
	for (i = 0; i < nfams; i++)
		fam_free(fams[i]);
	for (i = 0; i < F_FIELDS; i++)
		free(fields[i].v);
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
	size_t i, j;

	if (bind_to(ref_fd, rx_index, ETH_P_ALL) == -1)
		return -1;
	for (i = 0; i < nprogs; i++)
		if (bind_to(progs[i].cfd, rx_index, ETH_P_ALL) == -1 ||
		    bind_to(progs[i].efd, rx_index, ETH_P_ALL) == -1)
			return -1;
	for (i = 0; i < ngroups; i++)
		if (bind_to(groups[i].fd, rx_index, ETH_P_ALL) == -1)
			return -1;
	for (i = 0; i < nfams; i++)
		for (j = 0; j < fams[i]->ncl; j++)
			if (bind_to(fams[i]->cl[j].fd, rx_index, ETH_P_ALL) == -1)
				return -1;
	for (i = 0; i < nfprogs; i++)
		if (bind_to(fprogs[i]->fd, rx_index, ETH_P_ALL) == -1)
			return -1;
	return 0;
}

struct opts {
	const char	*rx, *tx, *corpus;
	unsigned	 nrandom, nmutants, nfamilies;
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
	if (live != NULL) {
		add_families(base, *nbase, o->nfamilies);
		pcap_close(live);
		live = NULL;
	}
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
	size_t nfbad = 0, fagree;
	struct fbad fbad[SHOW_MAX];
	double t0 = now_s();
	int before;

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
	before = failures;
	fagree = compare_families(fbad, SHOW_MAX, &nfbad);
	fam_coverage(o->nfamilies);
	if (failures == before)
		printf("PASS: kdiff: families: %zu programs of %zu families "
		    "count the packets and bytes of %zu counters as the "
		    "kernel's filter of each one's program: members, "
		    "constants listed more than once, pins, plain filters\n",
		    nfprogs, nfams, fagree);
	if (nbad > 0 || nfbad > 0)
		trace(bad, nbad, fbad, nfbad);
}

int
main(int argc, char **argv)
{
	struct opts o = { NULL, NULL, "/work/shared/corpus", 400, 400, 12 };
	unsigned long seed = (unsigned long)time(NULL) ^
	    (unsigned long)getpid();
	struct bpf_program base[128];
	size_t nbase = 0;
	double t0 = now_s();
	int c;

	while ((c = getopt(argc, argv, "c:f:m:n:r:s:t:")) != -1)
		switch (c) {
		case 'c':
			o.corpus = optarg;
			break;
		case 'f':
			o.nfamilies = (unsigned)strtoul(optarg, NULL, 10);
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
	if (o.nfamilies > FAM_MAX / 2)	/* and libpcap's, at most 21 */
		o.nfamilies = FAM_MAX / 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	seed &= 0xffffffff;
	printf("kdiff: seed %lu (kdiff -s %lu repeats this run)\n", seed, seed);
	rng = (seed + 1) * 0x9e3779b97f4a7c15ULL;
	memset(base, 0, sizeof(base));
	if (setup(&o, base, sizeof(base) / sizeof(base[0]), &nbase) == 0) {
		printf("kdiff: %zu programs, each on two sockets, %zu "
		    "counting programs and %zu of families; set up in %.1f "
		    "s\n", nprogs, ngroups, nfprogs, now_s() - t0);
		for (c = 0; c < K_KINDS; c++)
			print_tally((enum kind)c);
		print_families();
		verdicts(&o);
	}
	release(base, nbase);
	printf("kdiff: %.1f s in all\n", now_s() - t0);
	return failures != 0;
}
