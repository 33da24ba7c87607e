/*
 * gen.c: the traffic of `make bench`. One fixed cycle of frames (small UDP
 * to a few ports, TCP, ICMP, some 802.1Q-tagged frames, IPv6, ARP, some
 * full-size frames) sent on an interface at a given rate for a given time
 * through an AF_PACKET socket that bypasses the qdisc. It also writes the
 * cycle as a pcap file and computes, for a file of filters, the exact number
 * of packets each one matches in what was sent. It never receives.
 *
 * With -f FAMILY -n N the cycle is instead the traffic of N filters of one
 * family (`host A`, `tcp port P`, `vlan V`, or a blend of the three and
 * filters.txt): one frame for each filter, matching it and no other of
 * the family, and one frame in ten matching none. `filters` prints those
 * N filters.
 */
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>

#include <ctype.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FRAME_MAX	1518	/* 1514 plus one VLAN tag */
#define BATCH_MAX	64	/* frames per sendmmsg */
#define BURST_NS	1000000	/* when paced: one burst a millisecond */
#define FILTER_MAX	2048

enum kind { K_UDP, K_TCP, K_ICMP, K_UDP6, K_TCP6, K_ARP };

/* TCP flags */
#define FIN	0x01
#define SYN	0x02
#define RST	0x04
#define PSH	0x08
#define ACK	0x10

/* A payload prefix; the rest of the frame is a fixed pattern. */
#define P(s)	s, sizeof(s) - 1

/*
 * One kind of frame and how many of it one cycle holds. Addresses are in
 * 198.18.0.0/15 (RFC 2544, benchmarking) and 2001:db8::/32; MAC addresses
 * are locally administered and derived from the IP address, so no frame is
 * ever addressed to the receiving interface itself. len is the frame length
 * without the VLAN tag; a tagged frame is 4 bytes longer on the wire.
 */
struct tmpl {
	int		 count;
	enum kind	 kind;
	int		 vlan;		/* VLAN id, 0: untagged */
	const char	*src, *dst;
	int		 sport, dport;	/* ICMP: dport is the type */
	int		 flags;		/* TCP flags */
	int		 ttl;
	int		 len;
	const char	*payload;
	size_t		 payload_len;
};

static const struct tmpl mix[] = {
	/* DNS query and answer */
	{ 14, K_UDP, 0, "198.18.0.1", "198.19.10.1", 40001, 53, 0, 64, 74,
	  P("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07" "example\x03" "com\x00\x00\x01\x00\x01") },
	{ 10, K_UDP, 0, "198.19.10.1", "198.18.0.1", 53, 40001, 0, 57, 90,
	  P("\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x07" "example\x03" "com\x00\x00\x01\x00\x01") },
	/* NTP, SNMP, syslog, SIP, statsd */
	{ 6, K_UDP, 0, "198.18.0.2", "198.19.10.2", 40002, 123, 0, 64, 90, P("\x23\x00\x06\x20") },
	{ 5, K_UDP, 0, "198.18.0.3", "198.19.10.3", 40003, 161, 0, 64, 82, P("\x30\x24\x02\x01\x01\x04\x06public") },
	{ 6, K_UDP, 0, "198.18.1.7", "198.19.30.5", 514, 514, 0, 64, 120, P("<134>Oct 11 22:14:15 host app: ") },
	{ 3, K_UDP, 0, "198.18.0.2", "198.19.10.4", 5060, 5060, 0, 64, 400, P("INVITE sip:bob@example.com SIP/2.0\r\n") },
	{ 4, K_UDP, 0, "198.18.0.3", "198.19.40.9", 40010, 8125, 0, 64, 128, P("app.requests:1|c\n") },
	/* an HTTP connection: handshake, requests, full-size answers */
	{ 3, K_TCP, 0, "198.18.0.1", "198.19.20.80", 50000, 80, SYN, 64, 74, P("") },
	{ 3, K_TCP, 0, "198.19.20.80", "198.18.0.1", 80, 50000, SYN | ACK, 57, 74, P("") },
	{ 8, K_TCP, 0, "198.18.0.1", "198.19.20.80", 50000, 80, ACK, 64, 66, P("") },
	{ 6, K_TCP, 0, "198.19.20.80", "198.18.0.1", 80, 50000, PSH | ACK, 57, 1514, P("HTTP/1.1 200 OK\r\n") },
	/* TLS: a handshake record, full-size application data, the close */
	{ 5, K_TCP, 0, "198.18.0.2", "198.19.20.81", 50001, 443, PSH | ACK, 64, 583, P("\x16\x03\x01\x02\x00\x01") },
	{ 6, K_TCP, 0, "198.19.20.81", "198.18.0.2", 443, 50001, ACK, 57, 1514, P("\x17\x03\x03\x05\xb4") },
	{ 1, K_TCP, 0, "198.18.0.2", "198.19.20.81", 50001, 443, FIN | ACK, 64, 66, P("") },
	/* SSH, and a refused connection */
	{ 3, K_TCP, 0, "198.18.0.3", "198.19.20.82", 50002, 22, PSH | ACK, 64, 130, P("\x00\x00\x00\x3c\x0a\x14") },
	{ 1, K_TCP, 0, "198.18.1.7", "198.19.20.83", 50003, 8080, RST, 64, 60, P("") },
	/* ping */
	{ 2, K_ICMP, 0, "198.18.0.1", "198.19.10.1", 0, 8, 0, 64, 98, P("") },
	{ 2, K_ICMP, 0, "198.19.10.1", "198.18.0.1", 0, 0, 0, 57, 98, P("") },
	/* 802.1Q-tagged: DNS and ping on VLAN 100, TLS data on VLAN 200 */
	{ 4, K_UDP, 100, "198.18.100.5", "198.19.10.1", 40020, 53, 0, 64, 74,
	  P("\x56\x78\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07" "example\x03" "org\x00\x00\x01\x00\x01") },
	{ 3, K_TCP, 200, "198.18.200.9", "198.19.20.81", 50020, 443, PSH | ACK, 64, 1514, P("\x17\x03\x03\x05\xb4") },
	{ 1, K_ICMP, 100, "198.18.100.5", "198.19.10.1", 0, 8, 0, 64, 98, P("") },
	/* IPv6: DNS and a TLS connection attempt */
	{ 2, K_UDP6, 0, "2001:db8::1", "2001:db8::53", 40030, 53, 0, 64, 94,
	  P("\x9a\xbc\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07" "example\x03" "net\x00\x00\x1c\x00\x01") },
	{ 1, K_TCP6, 0, "2001:db8::1", "2001:db8::443", 50030, 443, SYN, 64, 94, P("") },
	/* ARP: who has 198.18.0.254 */
	{ 1, K_ARP, 0, "198.18.0.1", "198.18.0.254", 0, 0, 0, 0, 60, P("") },
};
#define NTMPL	(int)(sizeof(mix) / sizeof(mix[0]))

struct frame {
	unsigned char	data[FRAME_MAX];
	size_t		len;
};

static struct frame *cycle;	/* the frames in sending order */
static int ncycle;

/*
 * The families of many filters (-f): N filters that differ in one
 * constant, and a cycle with one frame per filter plus, for every
 * FAM_NONE_EVERY of them, one frame that matches none of the family.
 * Members: host 10.20.0.1 and up (10.20.0.0/22), tcp port 10000 and up,
 * vlan 1000 and up; `mixed` is the first min(64, N/4) lines of a filter
 * file (filters.txt) and the rest host, port and vlan in turn, with the
 * standard mix added to the cycle.
 */
enum family { FAM_MIX, FAM_HOST, FAM_PORT, FAM_VLAN, FAM_MIXED };
static const char *const fam_names[] = { "mix", "host", "port", "vlan", "mixed" };
#define FAM_MAX		1000	/* filters of one family */
#define FAM_NONE_EVERY	9	/* frames that match one per frame that matches none */
#define MIXED_TEXT_MAX	64	/* lines of the filter file in `mixed` */

static enum family family = FAM_MIX;
static int nfam;		/* -n */

/* The templates of the cycle; family templates own their address strings. */
static struct tmpl *parts;
static int nparts, partcap;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: gen [-f FAMILY -n N] send IFACE RATE SECONDS   (RATE packets/s, 0: as fast as possible)\n"
	    "       gen [-f FAMILY -n N] pcap FILE\n"
	    "       gen [-f FAMILY -n N] expect SENT FILTERFILE\n"
	    "       gen [-f FAMILY -n N] share FILTERFILE\n"
	    "       gen -f FAMILY -n N filters [FILTERFILE]\n"
	    "FAMILY: host, port, vlan or mixed (which takes lines of FILTERFILE); N: 1 to %d\n",
	    FAM_MAX);
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("gen: ", stderr);
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

/* ---------------------------------------------------------------- frames */

static void
put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static void
put32(unsigned char *p, uint32_t v)
{
	put16(p, v >> 16);
	put16(p + 2, v & 0xffff);
}

static uint32_t
sum16(const unsigned char *p, size_t len, uint32_t sum)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	return sum;
}

static unsigned
fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return ~sum & 0xffff;
}

/* 02:00 and the last four bytes of the address: never the receiver's own MAC. */
static void
mac_of(unsigned char *mac, const unsigned char *addr, size_t alen)
{
	mac[0] = 0x02;
	mac[1] = 0x00;
	memcpy(mac + 2, addr + alen - 4, 4);
}

static size_t
addr_parse(const char *text, unsigned char *addr)
{
	if (inet_pton(AF_INET, text, addr) == 1)
		return 4;
	if (inet_pton(AF_INET6, text, addr) == 1)
		return 16;
	die("bad address %s", text);
}

/* The Ethernet header (and tag) of T; returns the offset of the payload. */
static size_t
build_ether(const struct tmpl *t, unsigned char *f, const unsigned char *src,
    const unsigned char *dst, size_t alen, unsigned type)
{
	size_t off = 12;

	if (t->kind == K_ARP)
		memset(f, 0xff, 6);
	else
		mac_of(f, dst, alen);
	mac_of(f + 6, src, alen);
	if (t->vlan != 0) {
		put16(f + off, 0x8100);
		put16(f + off + 2, (unsigned)t->vlan);
		off += 4;
	}
	put16(f + off, type);
	return off + 2;
}

/* The TCP header at P (options included); returns its length. */
static size_t
build_tcp(const struct tmpl *t, unsigned char *p)
{
	size_t hl = 20;

	put16(p, (unsigned)t->sport);
	put16(p + 2, (unsigned)t->dport);
	put32(p + 4, 0x10000000u + (uint32_t)t->sport);
	put32(p + 8, t->flags & ACK ? 0x20000000u + (uint32_t)t->dport : 0);
	p[13] = (unsigned char)t->flags;
	put16(p + 14, 64240);
	if (t->flags & SYN) {
		/* MSS, SACK permitted, timestamps, NOP, window scale: a Linux SYN */
		static const unsigned char opt[20] = { 2, 4, 0x05, 0xb4, 4, 2,
		    8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 };
		memcpy(p + 20, opt, sizeof(opt));
		hl = 40;
	} else if (!(t->flags & RST)) {
		static const unsigned char opt[12] = { 1, 1, 8, 10, 0, 0, 0, 2,
		    0, 0, 0, 1 };
		memcpy(p + 20, opt, sizeof(opt));
		hl = 32;
	}
	p[12] = (unsigned char)(hl / 4 << 4);
	return hl;
}

/* The layer-4 header at P for T; returns its length. */
static size_t
build_l4(const struct tmpl *t, unsigned char *p)
{
	switch (t->kind) {
	case K_UDP:
	case K_UDP6:
		put16(p, (unsigned)t->sport);
		put16(p + 2, (unsigned)t->dport);
		return 8;
	case K_TCP:
	case K_TCP6:
		return build_tcp(t, p);
	case K_ICMP:
		p[0] = (unsigned char)t->dport;
		put16(p + 4, 0x4242);
		put16(p + 6, 1);
		return 8;
	case K_ARP:
		break;
	}
	return 0;
}

/* Fill the payload after its prefix with a pattern, then the checksums. */
static void
build_payload(const struct tmpl *t, unsigned char *p, size_t len)
{
	size_t i, n = t->payload_len < len ? t->payload_len : len;

	memcpy(p, t->payload, n);
	for (i = n; i < len; i++)
		p[i] = (unsigned char)('a' + i % 26);
}

static void
l4_checksum(const struct tmpl *t, unsigned char *l4, size_t l4len,
    const unsigned char *src, const unsigned char *dst, size_t alen, int proto)
{
	uint32_t sum = 0;
	size_t at = t->kind == K_UDP || t->kind == K_UDP6 ? 6 : 16;

	if (t->kind == K_ICMP) {
		put16(l4 + 2, fold(sum16(l4, l4len, 0)));
		return;
	}
	if (t->kind == K_UDP || t->kind == K_UDP6)
		put16(l4 + 4, (unsigned)l4len);
	sum = sum16(src, alen, sum);
	sum = sum16(dst, alen, sum);
	sum += (uint32_t)proto + (uint32_t)l4len;
	put16(l4 + at, fold(sum16(l4, l4len, sum)));
}

static void
build_arp(unsigned char *p, const unsigned char *src, const unsigned char *dst)
{
	put16(p, 1);
	put16(p + 2, 0x0800);
	p[4] = 6;
	p[5] = 4;
	put16(p + 6, 1);
	mac_of(p + 8, src, 4);
	memcpy(p + 14, src, 4);
	memset(p + 18, 0, 6);
	memcpy(p + 24, dst, 4);
}

/* Build the frame of T into F. */
static void
build(const struct tmpl *t, struct frame *f)
{
	unsigned char src[16], dst[16], *ip, *l4;
	size_t alen, off, l4len, hl;
	int proto = t->kind == K_TCP || t->kind == K_TCP6 ? 6 :
	    t->kind == K_ICMP ? 1 : 17;

	memset(f, 0, sizeof(*f));
	alen = addr_parse(t->src, src);
	if (addr_parse(t->dst, dst) != alen)
		die("template %s > %s: mixed address families", t->src, t->dst);
	f->len = (size_t)t->len + (t->vlan ? 4 : 0);
	off = build_ether(t, f->data, src, dst, alen, t->kind == K_ARP ?
	    0x0806 : alen == 16 ? 0x86dd : 0x0800);
	ip = f->data + off;
	if (t->kind == K_ARP) {
		build_arp(ip, src, dst);
		return;	/* the rest is Ethernet padding */
	}
	hl = alen == 16 ? 40 : 20;
	l4 = ip + hl;
	l4len = f->len - off - hl;
	if (t->kind == K_TCP && (t->flags & RST))
		l4len = 20;	/* the frame ends in Ethernet padding */
	off = build_l4(t, l4);
	build_payload(t, l4 + off, l4len - off);
	if (alen == 4) {
		ip[0] = 0x45;
		put16(ip + 2, (unsigned)(hl + l4len));
		put16(ip + 4, (unsigned)(t->sport ^ t->dport));
		if (proto == 6)
			put16(ip + 6, 0x4000);	/* don't fragment */
		ip[8] = (unsigned char)t->ttl;
		ip[9] = (unsigned char)proto;
		memcpy(ip + 12, src, 4);
		memcpy(ip + 16, dst, 4);
		put16(ip + 10, fold(sum16(ip, 20, 0)));
	} else {
		ip[0] = 0x60;
		put16(ip + 4, (unsigned)l4len);
		ip[6] = (unsigned char)proto;
		ip[7] = (unsigned char)t->ttl;
		memcpy(ip + 8, src, 16);
		memcpy(ip + 24, dst, 16);
	}
	l4_checksum(t, l4, l4len, src, dst, alen, proto);
}

/* ---------------------------------------------------------------- families */

static void
part_add(const struct tmpl *t)
{
	if (nparts == partcap) {
		partcap = partcap ? partcap * 2 : 256;
		if ((parts = reallocarray(parts, (size_t)partcap,
		    sizeof(*parts))) == NULL)
			die("out of memory");
	}
	parts[nparts++] = *t;
}

static const char *
addr4(int a, int b, int c, int d)
{
	char *s;

	if (asprintf(&s, "%d.%d.%d.%d", a, b, c, d) == -1)
		die("out of memory");
	return s;
}

/* A UDP or TCP frame between HOST and PEER, in the direction OUT says. */
static void
flow(const char *host, const char *peer, int out, int tcp, int hport,
    int pport, int len)
{
	struct tmpl t = {
		.count = 1, .kind = tcp ? K_TCP : K_UDP, .flags = tcp ? PSH | ACK : 0,
		.ttl = 64, .len = len, .payload = "", .payload_len = 0,
	};

	t.src = out ? host : peer;
	t.dst = out ? peer : host;
	t.sport = out ? hport : pport;
	t.dport = out ? pport : hport;
	part_add(&t);
}

/*
 * Frame I of the host family: 10.20.0.0/22 talking to 198.19.0.0/16, UDP
 * and TCP in both directions; NONE: the same from 10.21.0.0/16.
 */
static void
host_frame(int i, int none)
{
	static const int port[4] = { 53, 443, 123, 80 };
	int a = i + 1;
	const char *host = addr4(10, none ? 21 : 20, a >> 8, a & 255);
	const char *peer = addr4(198, 19, 10 + i % 4, 1 + i % 200);

	flow(host, peer, i % 2 == 0, i % 4 == 1 || i % 4 == 3, 40000 + i % 20000,
	    port[i % 4], 74 + 16 * (i % 8));
}

/*
 * Frame I of the port family: TCP to and from port 10000 + I; NONE: UDP
 * to that port, or TCP to a port below the family's.
 */
static void
port_frame(int i, int none)
{
	const char *client = addr4(198, 18, 1 + i % 4, 1 + i % 250);
	const char *server = addr4(198, 19, 20, 1 + i % 250);

	if (none)
		flow(client, server, 1, i % 2 == 1, 50000 + i % 10000,
		    i % 2 == 0 ? 10000 + i % FAM_MAX : 5000 + i % 1000, 90);
	else
		flow(client, server, i % 2 == 0, 1, 50000 + i % 10000, 10000 + i,
		    66 + 24 * (i % 8));
}

/*
 * Frame I of the vlan family: tagged with VLAN 1000 + I; NONE: untagged,
 * or tagged with a VLAN from 3000.
 */
static void
vlan_frame(int i, int none)
{
	const char *src = addr4(198, 18, 16 + (i >> 8), i & 255);
	const char *dst = addr4(198, 19, 10, 1 + i % 8);

	flow(src, dst, 1, i % 3 == 0, 40000 + i % 20000, i % 3 == 0 ? 443 : 53,
	    74 + 20 * (i % 6));
	parts[nparts - 1].vlan = none ? (i % 2 ? 3000 + i % 1000 : 0) : 1000 + i;
}

static void (*const fam_frame[])(int, int) = {
	[FAM_HOST] = host_frame, [FAM_PORT] = port_frame, [FAM_VLAN] = vlan_frame,
};

/* N members of family F and the frames that match none of them. */
static void
fam_parts(enum family f, int n)
{
	int i;

	for (i = 0; i < n; i++)
		fam_frame[f](i, 0);
	for (i = 0; i < (n + FAM_NONE_EVERY - 1) / FAM_NONE_EVERY; i++)
		fam_frame[f](i, 1);
}

/* In `mixed` of N: how many lines of the filter file, and of each family. */
static int
mixed_text(int n)
{
	return n / 4 < MIXED_TEXT_MAX ? n / 4 : MIXED_TEXT_MAX;
}

static int
mixed_members(int n, enum family f)
{
	int rest = n - mixed_text(n), k = (int)f - FAM_HOST;

	return rest / 3 + (k < rest % 3);
}

static void
parts_build(void)
{
	enum family f;
	int i;

	if (family == FAM_MIX || family == FAM_MIXED)
		for (i = 0; i < NTMPL; i++)
			part_add(&mix[i]);
	if (family == FAM_MIXED) {
		for (f = FAM_HOST; f <= FAM_VLAN; f++)
			fam_parts(f, mixed_members(nfam, f));
	} else if (family != FAM_MIX)
		fam_parts(family, nfam);
}

static int
cmd_filters(int argc, char **argv)
{
	char line[FILTER_MAX + 2];
	int i, k, m[FAM_VLAN + 1] = { 0 }, text;
	enum family f;
	FILE *fp;

	if (family == FAM_MIX || argc > 1 || (family == FAM_MIXED && argc != 1))
		usage();
	text = family == FAM_MIXED ? mixed_text(nfam) : 0;
	if (text > 0) {
		if ((fp = fopen(argv[0], "r")) == NULL)
			die("%s: %s", argv[0], strerror(errno));
		for (k = 0; k < text && fgets(line, sizeof(line), fp) != NULL;) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0] == '\0' || line[0] == '#')
				continue;
			printf("%s\n", line);
			k++;
		}
		fclose(fp);
		if (k < text)
			die("%s: %d filters, %d needed", argv[0], k, text);
	}
	for (i = 0; i < nfam - text; i++) {
		f = family == FAM_MIXED ? (enum family)(FAM_HOST + i % 3) : family;
		k = m[f]++;
		if (f == FAM_HOST)
			printf("host 10.20.%d.%d\n", (k + 1) >> 8, (k + 1) & 255);
		else if (f == FAM_PORT)
			printf("tcp port %d\n", 10000 + k);
		else
			printf("vlan %d\n", 1000 + k);
	}
	return 0;
}

/*
 * The cycle: every template COUNT times, spread out by a fixed stride
 * coprime with the cycle length, so that the kinds interleave on the wire
 * and any prefix of the cycle is still a mix.
 */
static int
gcd(int a, int b)
{
	return b == 0 ? a : gcd(b, a % b);
}

static void
cycle_build(void)
{
	int i, j, k, stride = 37;

	parts_build();
	for (i = 0; i < nparts; i++)
		ncycle += parts[i].count;
	while (gcd(stride, ncycle) != 1)
		stride++;
	if ((cycle = calloc((size_t)ncycle, sizeof(*cycle))) == NULL)
		die("out of memory");
	for (i = 0, k = 0; i < nparts; i++)
		for (j = 0; j < parts[i].count; j++, k++)
			build(&parts[i], &cycle[(size_t)k * (size_t)stride % (size_t)ncycle]);
}

/* ---------------------------------------------------------------- send */

static int
tx_open(const char *ifname)
{
	struct sockaddr_ll sll;
	int fd, one = 1;

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	if ((sll.sll_ifindex = (int)if_nametoindex(ifname)) == 0)
		die("%s: %s", ifname, strerror(errno));
	/* Protocol 0: this socket only sends, the kernel queues nothing to it. */
	if ((fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) == -1)
		die("socket: %s", strerror(errno));
	/* Straight to the driver: no qdisc, so no queue to overflow here. */
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one,
	    sizeof(one)) == -1)
		die("PACKET_QDISC_BYPASS: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1)
		die("bind %s: %s", ifname, strerror(errno));
	return fd;
}

/* Send N frames from cycle position FIRST on; how many the kernel took. */
static int
tx_batch(int fd, uint64_t first, int n)
{
	static struct mmsghdr msg[BATCH_MAX];
	static struct iovec iov[BATCH_MAX];
	struct frame *f;
	int i, rc;

	for (i = 0; i < n; i++) {
		f = &cycle[(first + (uint64_t)i) % (uint64_t)ncycle];
		iov[i].iov_base = f->data;
		iov[i].iov_len = f->len;
		memset(&msg[i], 0, sizeof(msg[i]));
		msg[i].msg_hdr.msg_iov = &iov[i];
		msg[i].msg_hdr.msg_iovlen = 1;
	}
	rc = sendmmsg(fd, msg, (unsigned)n, 0);
	if (rc >= 0)
		return rc;
	if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
		return 0;
	die("sendmmsg: %s", strerror(errno));
}

static void
sleep_until(uint64_t t)
{
	struct timespec ts = {
		.tv_sec = (time_t)(t / 1000000000u),
		.tv_nsec = (long)(t % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		continue;
}

/*
 * Keep the number sent equal to RATE times the time elapsed: every
 * BURST_NS, send what is due, then sleep. A late wakeup makes the next
 * burst bigger, never the total smaller. Sleeping rather than spinning
 * leaves this CPU idle between bursts, so the whole-system CPU the bench
 * reads is the sending and the kernel's receive work, not a busy loop.
 * Frames the kernel refuses are not counted: what was sent is always a
 * prefix of the repeated cycle.
 */
static int
cmd_send(int argc, char **argv)
{
	uint64_t rate, dur, start, end, t, sent = 0, due, next;
	struct rusage ru;
	int fd, want;

	if (argc != 3)
		usage();
	rate = strtoull(argv[1], NULL, 10);
	dur = (uint64_t)(strtod(argv[2], NULL) * 1e9);
	if (dur == 0)
		usage();
	fd = tx_open(argv[0]);
	start = t = now_ns();
	end = start + dur;
	while (t < end) {
		due = rate == 0 ? sent + BATCH_MAX :
		    (uint64_t)((double)(t - start) * (double)rate / 1e9);
		if (due > sent) {
			want = due - sent < BATCH_MAX ? (int)(due - sent) : BATCH_MAX;
			sent += (uint64_t)tx_batch(fd, sent, want);
		} else {
			next = t + BURST_NS - (t - start) % BURST_NS;
			sleep_until(next < end ? next : end);
		}
		t = now_ns();
	}
	getrusage(RUSAGE_SELF, &ru);
	printf("sent %llu ns %llu user_us %lld sys_us %lld\n",
	    (unsigned long long)sent, (unsigned long long)(t - start),
	    (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	    (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------- pcap */

static int
cmd_pcap(int argc, char **argv)
{
	struct pcap_pkthdr h;
	pcap_dumper_t *d;
	pcap_t *p;
	int i;

	if (argc != 1)
		usage();
	if ((p = pcap_open_dead(DLT_EN10MB, 65535)) == NULL)
		die("pcap_open_dead failed");
	if ((d = pcap_dump_open(p, argv[0])) == NULL)
		die("%s: %s", argv[0], pcap_geterr(p));
	for (i = 0; i < ncycle; i++) {
		h.ts.tv_sec = 0;
		h.ts.tv_usec = i;
		h.caplen = h.len = (bpf_u_int32)cycle[i].len;
		pcap_dump((u_char *)d, &h, cycle[i].data);
	}
	pcap_dump_close(d);
	pcap_close(p);
	return 0;
}

/* ---------------------------------------------------------------- expect */

/* Does the filter use the vlan keyword? Only then is it compiled for tags. */
static int
has_vlan(const char *filter)
{
	const char *s = filter;
	size_t n;

	while (*s != '\0') {
		for (n = 0; isalnum((unsigned char)s[n]); n++)
			continue;
		if (n == 4 && strncmp(s, "vlan", 4) == 0)
			return 1;
		s += n > 0 ? n : 1;
	}
	return 0;
}

/*
 * Linux removes the outer 802.1Q tag before any packet socket sees a frame:
 * the socket's filter runs on the untagged frame, 4 bytes shorter, unless
 * it was compiled for the vlan keyword, which reads the tag from the
 * packet's metadata and so agrees with the frame as sent.
 */
static void
strip_tag(const struct frame *in, struct frame *out)
{
	*out = *in;
	if (in->len >= 18 && in->data[12] == 0x81 && in->data[13] == 0x00) {
		memmove(out->data + 12, in->data + 16, in->len - 16);
		out->len = in->len - 4;
	}
}

/* Matches of FILTER per cycle position, into MATCH[ncycle]. */
static void
match_cycle(pcap_t *p, const char *filter, int *match)
{
	struct bpf_program prog;
	struct pcap_pkthdr h;
	struct frame f;
	int i, vlan = has_vlan(filter);

	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == -1)
		die("filter '%s': %s", filter, pcap_geterr(p));
	for (i = 0; i < ncycle; i++) {
		if (vlan)
			f = cycle[i];
		else
			strip_tag(&cycle[i], &f);
		memset(&h, 0, sizeof(h));
		h.caplen = h.len = (bpf_u_int32)f.len;
		match[i] = pcap_offline_filter(&prog, &h, f.data) != 0;
	}
	pcap_freecode(&prog);
}

/* Open FILTERFILE; the next filter of it into LINE, 0 at its end. */
static FILE *
filters_open(const char *path)
{
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		die("%s: %s", path, strerror(errno));
	return f;
}

static int
filters_next(FILE *f, char *line, int size)
{
	while (fgets(line, size, f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0' && line[0] != '#')
			return 1;
	}
	return 0;
}

/* Print "PACKETS<TAB>FILTER" for each filter, for SENT frames sent. */
static int
cmd_expect(int argc, char **argv)
{
	char line[FILTER_MAX + 2];
	uint64_t sent, full, count;
	int *match, i, rest;
	pcap_t *p;
	FILE *f;

	if (argc != 2)
		usage();
	sent = strtoull(argv[0], NULL, 10);
	full = sent / (uint64_t)ncycle;
	rest = (int)(sent % (uint64_t)ncycle);
	f = filters_open(argv[1]);
	if ((p = pcap_open_dead(DLT_EN10MB, 65535)) == NULL ||
	    (match = calloc((size_t)ncycle, sizeof(*match))) == NULL)
		die("out of memory");
	while (filters_next(f, line, sizeof(line))) {
		match_cycle(p, line, match);
		count = 0;
		for (i = 0; i < ncycle; i++)
			count += (uint64_t)match[i] * (full + (i < rest));
		printf("%llu\t%s\n", (unsigned long long)count, line);
	}
	fclose(f);
	free(match);
	pcap_close(p);
	return 0;
}

/*
 * How the cycle meets the filters of FILTERFILE: "frames F none Z one O
 * more M matches X", frames matching none, exactly one, more than one,
 * and the matches a frame has on average.
 */
static int
cmd_share(int argc, char **argv)
{
	char line[FILTER_MAX + 2];
	int *match, *hits, i, z = 0, o = 0, m = 0;
	uint64_t total = 0;
	pcap_t *p;
	FILE *f;

	if (argc != 1)
		usage();
	f = filters_open(argv[0]);
	if ((p = pcap_open_dead(DLT_EN10MB, 65535)) == NULL ||
	    (match = calloc((size_t)ncycle, sizeof(*match))) == NULL ||
	    (hits = calloc((size_t)ncycle, sizeof(*hits))) == NULL)
		die("out of memory");
	while (filters_next(f, line, sizeof(line))) {
		match_cycle(p, line, match);
		for (i = 0; i < ncycle; i++)
			hits[i] += match[i];
	}
	for (i = 0; i < ncycle; i++) {
		z += hits[i] == 0;
		o += hits[i] == 1;
		m += hits[i] > 1;
		total += (uint64_t)hits[i];
	}
	printf("frames %d none %d one %d more %d matches %.3f\n", ncycle, z, o, m,
	    (double)total / ncycle);
	fclose(f);
	free(match);
	free(hits);
	pcap_close(p);
	return 0;
}

static enum family
fam_parse(const char *name)
{
	size_t i;

	for (i = 1; i < sizeof(fam_names) / sizeof(fam_names[0]); i++)
		if (strcmp(name, fam_names[i]) == 0)
			return (enum family)i;
	usage();
}

int
main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "+f:n:")) != -1) {
		switch (c) {
		case 'f':
			family = fam_parse(optarg);
			break;
		case 'n':
			nfam = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || (family != FAM_MIX) != (nfam != 0) || nfam < 0 ||
	    nfam > FAM_MAX)
		usage();
	signal(SIGPIPE, SIG_DFL);
	if (strcmp(argv[0], "filters") == 0)
		return cmd_filters(argc - 1, argv + 1);
	cycle_build();
	if (strcmp(argv[0], "send") == 0)
		return cmd_send(argc - 1, argv + 1);
	if (strcmp(argv[0], "pcap") == 0)
		return cmd_pcap(argc - 1, argv + 1);
	if (strcmp(argv[0], "expect") == 0)
		return cmd_expect(argc - 1, argv + 1);
	if (strcmp(argv[0], "share") == 0)
		return cmd_share(argc - 1, argv + 1);
	usage();
}
