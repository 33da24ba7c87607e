/*
 * test_xlate.c: the classic-to-eBPF translator and its bpf(2) side, held
 * against a model of the kernel's classic BPF on every packet of the
 * corpus, the model itself held against libpcap's interpreter wherever
 * the two mean the same: each filter alone (the test form) and all at
 * once (the counting form) with BPF_PROG_TEST_RUN, then live on a veth
 * pair, where the kernel strips VLAN tags, against a model of that and
 * the corpus's live counts. The kernel itself is the oracle of
 * tests/sys/kdiff.sh. Runs in a private network namespace; needs root,
 * ip(8) and the corpus.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* unshare(2) */
#endif

#include "../../daemon/xlate.c"
#include "../../daemon/bpfsys.c"

/*
 * libpcap names its classic instruction struct bpf_insn, like the kernel's
 * eBPF one that the modules above use: rename libpcap's here. The layout
 * is that of struct sock_filter, which is what the tests pass around.
 */
#define bpf_insn pcap_bpf_insn
#include <pcap/pcap.h>
#undef bpf_insn

#include <glob.h>
#include <net/if.h>
#include <sched.h>
#include <time.h>

#include "check.h"

#define ETH_HDR		14
#define SNAPLEN		128		/* what the daemon compiles with */
#define MIN_PACKETS	20000		/* the corpus has 26533 */
#define MIN_CASES	80		/* programs checked packet by packet */
#define PRINT_MAX	5		/* mismatches shown per program */
#define SLOTS		64
#define RECV_IF		"cst1"		/* the veth end that receives */
#define SEND_IF		"cst0"

/* ---- the corpus */

/*
 * A packet as BPF_PROG_TEST_RUN takes it: the kernel pulls the first 14
 * bytes as the Ethernet header (eth_type_trans) and runs a socket filter
 * on what follows, so the frame goes after a copy of its own header.
 */
struct pkt {
	uint8_t		*run;		/* ETH_HDR bytes, then the frame */
	uint8_t		*frame;
	uint32_t	 len;
	uint16_t	 proto;		/* the test run's skb->protocol */
	uint8_t		 pkttype;	/* skb->pkt_type in the test run */
};

struct file {
	char		 name[128];
	struct pkt	*pkts;
	size_t		 n;
};

static struct file *files;
static size_t nfiles, npkts;
static const char *corpus;

/* A device as eth_type_trans() sees it. */
struct dev {
	uint8_t		 addr[6], bcast[6];
	uint32_t	 ifindex;
};

static struct dev lo;		/* the test run's: the namespace's loopback */
static struct dev rx;		/* the veth end that receives */

static int
parse_mac(const char *s, uint8_t *mac)
{
	unsigned v[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
	    &v[5]) != 6)
		return -1;
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

/*
 * Device NAME's address and broadcast address, from ip(8): sysfs shows
 * the namespace it was mounted in, not this one.
 */
static int
read_dev(const char *name, struct dev *d)
{
	char cmd[128], line[1024], *a, *b;
	FILE *f;
	int rc = -1;

	snprintf(cmd, sizeof(cmd), "ip -o link show dev %s", name);
	if ((f = popen(cmd, "re")) == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) != NULL &&
	    (a = strstr(line, "link/")) != NULL &&
	    (a = strchr(a, ' ')) != NULL && (b = strstr(a, " brd ")) != NULL &&
	    parse_mac(a + 1, d->addr) == 0 && parse_mac(b + 5, d->bcast) == 0)
		rc = 0;
	pclose(f);
	d->ifindex = if_nametoindex(name);
	return rc == 0 && d->ifindex != 0 ? 0 : -1;
}

/* skb->pkt_type as eth_type_trans() sets it on device D. */
static uint8_t
pkt_type(const uint8_t *dst, const struct dev *d)
{
	if (memcmp(dst, d->addr, 6) == 0)
		return PACKET_HOST;
	if (dst[0] & 1)
		return memcmp(dst, d->bcast, 6) == 0 ? PACKET_BROADCAST :
		    PACKET_MULTICAST;
	return PACKET_OTHERHOST;
}

/*
 * skb->protocol as eth_type_trans() (or, under a VLAN tag,
 * vlan_set_encap_proto()) sets it: the EtherType, or for an 802.3 length
 * ETH_P_802_3 when the two bytes after it are 0xffff, else ETH_P_802_2.
 */
static uint16_t
eth_proto(uint16_t type, const uint8_t *after, size_t left)
{
	if (type >= ETH_P_802_3_MIN)
		return type;
	if (left >= 2 && after[0] == 0xff && after[1] == 0xff)
		return ETH_P_802_3;
	return ETH_P_802_2;
}

/*
 * The test run's socket buffer: eth_type_trans() on the loopback pulls the
 * header copy, so the two bytes after it are the frame's first two.
 */
static void
model_skb(struct pkt *p)
{
	const uint8_t *h = p->run;

	p->pkttype = pkt_type(h, &lo);
	p->proto = eth_proto((uint16_t)(h[12] << 8 | h[13]), p->frame, p->len);
}

static int
add_packet(struct file *f, const struct pcap_pkthdr *h, const u_char *data)
{
	struct pkt *p = &f->pkts[f->n];

	CHECK_MSG(h->caplen == h->len, "%s: packet %zu is cut\n", f->name,
	    f->n);
	if ((p->run = calloc(1, ETH_HDR + h->caplen)) == NULL)
		return -1;
	p->frame = p->run + ETH_HDR;
	p->len = h->caplen;
	memcpy(p->frame, data, h->caplen);
	memcpy(p->run, data, h->caplen < ETH_HDR ? h->caplen : ETH_HDR);
	model_skb(p);
	f->n++;
	return 0;
}

static int
load_file(struct file *f, const char *path)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	size_t cap = 0;
	struct pkt *n;
	pcap_t *p;

	if ((p = pcap_open_offline(path, ebuf)) == NULL) {
		fprintf(stderr, "%s\n", ebuf);
		return -1;
	}
	strlcpy(f->name, strrchr(path, '/') + 1, sizeof(f->name));
	while (pcap_next_ex(p, &h, &data) == 1) {
		if (f->n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((n = realloc(f->pkts, cap * sizeof(*n))) == NULL)
				break;
			f->pkts = n;
		}
		if (add_packet(f, h, data) == -1)
			break;
	}
	pcap_close(p);
	npkts += f->n;
	return 0;
}

static int
load_corpus(void)
{
	char pattern[512];
	glob_t g;
	size_t i;

	snprintf(pattern, sizeof(pattern), "%s/*.pcap", corpus);
	if (glob(pattern, 0, NULL, &g) != 0)
		return -1;
	files = calloc(g.gl_pathc, sizeof(*files));
	for (i = 0; files != NULL && i < g.gl_pathc; i++)
		if (load_file(&files[nfiles], g.gl_pathv[i]) == 0)
			nfiles++;
	globfree(&g);
	return files == NULL ? -1 : 0;
}

/* ---- test cases: one classic program each */

struct tcase {
	char			 name[200];	/* the expression and handle */
	struct sock_filter	*insns;
	unsigned		 len;
	bool			 anc;		/* reads ancillary data */
	bool			 corpus;	/* from filters.txt */
	uint64_t		 compared, mismatches;
};

static struct tcase *cases;
static size_t ncases, capcases;

static bool
is_anc(const struct sock_filter *in)
{
	int32_t k = (int32_t)in->k;

	return BPF_CLASS(in->code) == BPF_LD && BPF_MODE(in->code) == BPF_ABS &&
	    k < 0 && k >= SKF_AD_OFF;
}

static void
set_case(struct tcase *c, const char *name, const struct sock_filter *insns,
    unsigned len)
{
	unsigned i;

	memset(c, 0, sizeof(*c));
	strlcpy(c->name, name, sizeof(c->name));
	if ((c->insns = malloc(len * sizeof(*insns))) == NULL)
		abort();
	memcpy(c->insns, insns, len * sizeof(*insns));
	c->len = len;
	for (i = 0; i < len; i++)
		c->anc |= is_anc(&insns[i]);
}

static struct tcase *
add_case(const char *name, const struct sock_filter *insns, unsigned len)
{
	struct tcase *n;

	if (ncases == capcases) {
		capcases = capcases ? capcases * 2 : 64;
		if ((n = realloc(cases, capcases * sizeof(*n))) == NULL)
			abort();
		cases = n;
	}
	set_case(&cases[ncases], name, insns, len);
	return &cases[ncases++];
}

static pcap_t *dead, *live;

/* Compile EXPR like the daemon does; 0 or -1 (with P's error). */
static int
compile(pcap_t *p, const char *expr, struct bpf_program *prog)
{
	return pcap_compile(p, prog, expr, 1, PCAP_NETMASK_UNKNOWN);
}

/*
 * EXPR on a dead Ethernet handle and on a live one (the veth): both when
 * the programs differ (libpcap uses the kernel's VLAN data on live
 * handles only). An expression that neither compiles is a failure. Of a
 * corpus expression, the program the daemon would count with, the live
 * one, is marked for the counting tests.
 */
static size_t
add_expr(const char *expr, bool from_corpus)
{
	struct bpf_program pd, pl;
	struct tcase *c = NULL;
	int rd, rl;
	char name[200];
	size_t added = 0;

	rd = compile(dead, expr, &pd);
	rl = compile(live, expr, &pl);
	CHECK_MSG(rd == 0 || rl == 0, "'%s': %s; %s\n", expr,
	    pcap_geterr(dead), pcap_geterr(live));
	if (rd == 0) {
		snprintf(name, sizeof(name), "'%s' (dead handle)", expr);
		c = add_case(name, (struct sock_filter *)pd.bf_insns,
		    pd.bf_len);
		added++;
	}
	if (rl == 0 && (rd != 0 || pl.bf_len != pd.bf_len ||
	    memcmp(pl.bf_insns, pd.bf_insns, pl.bf_len * 8) != 0)) {
		snprintf(name, sizeof(name), "'%s' (live handle)", expr);
		c = add_case(name, (struct sock_filter *)pl.bf_insns,
		    pl.bf_len);
		added++;
	}
	if (c != NULL)
		c->corpus = from_corpus;
	if (rd == 0)
		pcap_freecode(&pd);
	if (rl == 0)
		pcap_freecode(&pl);
	return added;
}

/*
 * Every instruction class, loads in and out of bounds, VLAN, arithmetic.
 * Tests that chain with "and" or "or" are false or true often enough that
 * every part runs on many packets: each program costs a test run per packet.
 */
static const char *own_exprs[] = {
	"vlan 10", "vlan and vlan 20 and tcp", "inbound", "outbound",
	"ifindex 1",
	/* loads: a 4-byte one 2-aligned, odd ones byte by byte */
	"ether src 00:0c:29:8b:1a:2c",
	"ether[3:4] = 0x01020304 or ether[5:2] = 0x0001",
	/* the end of the prefix copy, past it, past the packet */
	"ether[125:4] != 1 and ether[127:2] != 1 and ether[200:4] != 1 and "
	    "ether[1500] != 1 and ether[1510:4] != 1",
	"tcp[100:4] != 1 and tcp[200] != 1 and tcp[1300:2] != 1",
	"udp[20:4] = udp[24:4]",
	"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
	/* compares and arithmetic with X; division by a zero X */
	"ip[8] = ip[9] or ip[9] > ip[8] or ip[1] >= ip[8] or "
	    "ip[8] & ip[1] != 0",
	"len % ip[1] = 3", "(len - 14) / ip[1] = 3",
	"ip[0] << ip[1] = 0 or ip[2:2] >> ip[1] = 0",
	"ip[0] * ip[8] > 1000 and ip[0] + ip[8] > 100 and ip[8] - ip[0] > 10 "
	    "and (ip[0] | ip[1] = 69 or ip[0] ^ ip[1] = 69)",
	/* with constants: NEG, large unsigned values */
	"-ip[0] = -69 and ip[2:2] / 3 > 10 and ip[2:2] % 7 != 3 and "
	    "ip[0] << 2 = 0x114 and ip[2:2] >> 2 > 10",
	"ip[0:4] > 0x80000000 or ip[12:4] & 0xff000000 = 0xc0000000",
	/* where the kernel parts from libpcap: shifts by 32+, X + k */
	"ip[0] << ip[8] != 0", "ip[2:2] >> (ip[9]) = 0",
	"ether[ether[12] & 3] = 0", "ip[ip[0] & 0xf] > 3",
	"(ip[8] / (ip[9] - 17)) = 1", "ip[8] % ip[1] = 0",
	/* other protocols and encapsulations */
	"icmp6 and ip6[40] = 135", "arp[6:2] = 1",
	"ipx or stp or iso or decnet",
	"pppoes and ip", "mpls and ip", "geneve and ip",
};

#define S(c, k)		BPF_STMT(c, k)
#define J(c, k, t, f)	BPF_JUMP(c, k, t, f)
#define AD(f)		(uint32_t)(SKF_AD_OFF + (f))

/* What libpcap does not emit for these expressions, written by hand. */
static const struct sock_filter hw_ret_a[] = {
	S(BPF_LD | BPF_B | BPF_ABS, 14), S(BPF_ALU | BPF_AND | BPF_K, 1),
	S(BPF_RET | BPF_A, 0),
};
static const struct sock_filter hw_proto_ip[] = {
	S(BPF_LD | BPF_H | BPF_ABS, AD(SKF_AD_PROTOCOL)),
	J(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 1),
	S(BPF_RET | BPF_K, 1), S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_proto_llc[] = {	/* a byte load */
	S(BPF_LD | BPF_B | BPF_ABS, AD(SKF_AD_PROTOCOL)),
	J(BPF_JMP | BPF_JGE | BPF_K, ETH_P_802_3_MIN, 1, 0),
	S(BPF_RET | BPF_A, 0), S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_pkttype[] = {
	S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_PKTTYPE)),
	J(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OTHERHOST, 2, 0),
	J(BPF_JMP | BPF_JEQ | BPF_K, PACKET_BROADCAST, 0, 2),
	S(BPF_LD | BPF_B | BPF_ABS, 0), S(BPF_RET | BPF_A, 0),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_fields[] = {	/* all zero in a test run */
	S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_MARK)), S(BPF_ST, 0),
	S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_QUEUE)), S(BPF_ST, 1),
	S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_RXHASH)), S(BPF_ST, 2),
	S(BPF_LD | BPF_H | BPF_ABS, AD(SKF_AD_VLAN_TPID)), S(BPF_ST, 3),
	S(BPF_LD | BPF_H | BPF_ABS, AD(SKF_AD_VLAN_TAG)), S(BPF_ST, 4),
	S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_IFINDEX)),
	S(BPF_LDX | BPF_MEM, 0), S(BPF_ALU | BPF_OR | BPF_X, 0),
	S(BPF_LDX | BPF_MEM, 1), S(BPF_ALU | BPF_OR | BPF_X, 0),
	S(BPF_LDX | BPF_MEM, 2), S(BPF_ALU | BPF_OR | BPF_X, 0),
	S(BPF_LDX | BPF_MEM, 3), S(BPF_ALU | BPF_OR | BPF_X, 0),
	S(BPF_LDX | BPF_MEM, 4), S(BPF_ALU | BPF_OR | BPF_X, 0),
	S(BPF_LDX | BPF_B | BPF_MSH, 14),
	S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_ALU_XOR_X)),
	S(BPF_ALU | BPF_AND | BPF_K, 0x3f), S(BPF_RET | BPF_A, 0),
};
static const struct sock_filter hw_len_x[] = {
	S(BPF_LDX | BPF_W | BPF_LEN, 0), S(BPF_LD | BPF_B | BPF_ABS, 13),
	S(BPF_ALU | BPF_ADD | BPF_K, 1000),
	J(BPF_JMP | BPF_JGE | BPF_X, 0, 0, 1),
	S(BPF_RET | BPF_K, 0), S(BPF_LD | BPF_W | BPF_LEN, 0),
	J(BPF_JMP | BPF_JSET | BPF_X, 0, 0, 1), S(BPF_RET | BPF_K, 7),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_div0[] = {	/* X = 0: rejects */
	S(BPF_LD | BPF_B | BPF_ABS, 12), S(BPF_LDX | BPF_IMM, 0),
	S(BPF_ALU | BPF_DIV | BPF_X, 0), S(BPF_RET | BPF_K, 1),
};
static const struct sock_filter hw_mod0[] = {
	S(BPF_LD | BPF_B | BPF_ABS, 12), S(BPF_MISC | BPF_TAX, 0),
	S(BPF_LD | BPF_B | BPF_ABS, 13), S(BPF_ALU | BPF_MOD | BPF_X, 0),
	S(BPF_ALU | BPF_ADD | BPF_K, 1), S(BPF_RET | BPF_A, 0),
};
static const struct sock_filter hw_shifts[] = {	/* counts of 32 and more */
	S(BPF_LD | BPF_B | BPF_ABS, 15), S(BPF_ALU | BPF_AND | BPF_K, 0x3f),
	S(BPF_MISC | BPF_TAX, 0), S(BPF_LD | BPF_IMM, 0xffffffff),
	S(BPF_ALU | BPF_LSH | BPF_X, 0), S(BPF_ST, 5),
	S(BPF_LD | BPF_IMM, 0x80000001), S(BPF_ALU | BPF_RSH | BPF_X, 0),
	S(BPF_LDX | BPF_MEM, 5), S(BPF_ALU | BPF_OR | BPF_X, 0),
	J(BPF_JMP | BPF_JSET | BPF_K, 0x80000001, 0, 1), S(BPF_RET | BPF_K, 1),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_neg_alu[] = {
	S(BPF_LD | BPF_H | BPF_ABS, 16), S(BPF_ALU | BPF_NEG, 0),
	S(BPF_ALU | BPF_MUL | BPF_K, 0x9e3779b9),
	S(BPF_ALU | BPF_XOR | BPF_K, 0xdeadbeef),
	S(BPF_ALU | BPF_SUB | BPF_K, 12345), S(BPF_ALU | BPF_DIV | BPF_K, 3),
	S(BPF_ALU | BPF_MOD | BPF_K, 1000003), S(BPF_ALU | BPF_LSH | BPF_K, 3),
	S(BPF_ALU | BPF_RSH | BPF_K, 1), S(BPF_ALU | BPF_OR | BPF_K, 0x10),
	J(BPF_JMP | BPF_JGT | BPF_K, 0x1ffff, 0, 1), S(BPF_RET | BPF_K, 1),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_ind_edges[] = {	/* X + k wraps: 8 */
	S(BPF_LDX | BPF_IMM, 0xfffffff8), S(BPF_LD | BPF_B | BPF_IND, 0x10),
	S(BPF_RET | BPF_K, 1),
};
static const struct sock_filter hw_ind_wrap[] = {	/* wraps to 12 or 76 */
	S(BPF_LD | BPF_B | BPF_ABS, 23), S(BPF_ALU | BPF_AND | BPF_K, 0x40),
	S(BPF_ALU | BPF_ADD | BPF_K, 0xffffff0c), S(BPF_MISC | BPF_TAX, 0),
	S(BPF_LD | BPF_H | BPF_IND, 0x100), S(BPF_ALU | BPF_AND | BPF_K, 0x101),
	S(BPF_RET | BPF_A, 0),
};
static const struct sock_filter hw_ind_low[] = {	/* below SKF_LL_OFF */
	S(BPF_LD | BPF_B | BPF_ABS, 14), S(BPF_ALU | BPF_AND | BPF_K, 1),
	S(BPF_ALU | BPF_ADD | BPF_K, 0x80000000), S(BPF_MISC | BPF_TAX, 0),
	S(BPF_LD | BPF_W | BPF_IND, 0x10), S(BPF_RET | BPF_K, 1),
};
static const struct sock_filter hw_msh_low[] = {
	S(BPF_LDX | BPF_B | BPF_MSH, 0xffdfffff), S(BPF_RET | BPF_K, 1),
};
static const struct sock_filter hw_ind_bigk[] = {
	S(BPF_LD | BPF_H | BPF_IND, 0x80000000), S(BPF_RET | BPF_K, 1),
};
static const struct sock_filter hw_abs_low[] = {	/* below SKF_LL_OFF */
	S(BPF_LD | BPF_W | BPF_ABS, 0x80000000), S(BPF_RET | BPF_K, 1),
};
/* The last bytes: len - 4 is an offset once len >= 4 is known. */
static const struct sock_filter hw_ind_tail[] = {
	S(BPF_LD | BPF_W | BPF_LEN, 0), J(BPF_JMP | BPF_JGE | BPF_K, 4, 1, 0),
	S(BPF_RET | BPF_K, 0), S(BPF_ALU | BPF_SUB | BPF_K, 4),
	S(BPF_MISC | BPF_TAX, 0), J(BPF_JMP | BPF_JA, 1, 0, 0),
	S(BPF_RET | BPF_K, 0), S(BPF_LD | BPF_W | BPF_IND, 0),
	S(BPF_ALU | BPF_AND | BPF_K, 0x10101), S(BPF_RET | BPF_A, 0),
};
static const struct sock_filter hw_ind_past[] = {	/* one byte too far */
	S(BPF_LD | BPF_W | BPF_LEN, 0), J(BPF_JMP | BPF_JGT | BPF_K, 2, 0, 4),
	S(BPF_ALU | BPF_SUB | BPF_K, 3), S(BPF_MISC | BPF_TAX, 0),
	S(BPF_LD | BPF_W | BPF_IND, 0), S(BPF_RET | BPF_K, 1),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_scratch[] = {	/* every M[] slot */
	S(BPF_LD | BPF_B | BPF_ABS, 20), S(BPF_ST, 0), S(BPF_ST, 1),
	S(BPF_ST, 2), S(BPF_ST, 3), S(BPF_ST, 4), S(BPF_ST, 5), S(BPF_ST, 6),
	S(BPF_ST, 7), S(BPF_LDX | BPF_IMM, 3), S(BPF_STX, 8), S(BPF_STX, 9),
	S(BPF_STX, 10), S(BPF_STX, 11), S(BPF_STX, 12), S(BPF_STX, 13),
	S(BPF_STX, 14), S(BPF_ST, 15), S(BPF_LD | BPF_MEM, 13),
	S(BPF_LDX | BPF_MEM, 15), S(BPF_ALU | BPF_ADD | BPF_X, 0),
	S(BPF_LDX | BPF_MEM, 7), S(BPF_ALU | BPF_SUB | BPF_X, 0),
	S(BPF_MISC | BPF_TXA, 0), S(BPF_ALU | BPF_AND | BPF_K, 1),
	S(BPF_RET | BPF_A, 0),
};
static const struct sock_filter hw_unreached[] = {	/* dead code skipped */
	S(BPF_LD | BPF_B | BPF_ABS, 0), J(BPF_JMP | BPF_JA, 2, 0, 0),
	S(BPF_LD | BPF_MEM, 3), S(BPF_RET | BPF_A, 0),
	J(BPF_JMP | BPF_JEQ | BPF_K, 0xff, 0, 1), S(BPF_RET | BPF_K, 9),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_initial[] = {	/* A and X start at 0 */
	S(BPF_LD | BPF_B | BPF_IND, 14), S(BPF_ALU | BPF_ADD | BPF_X, 0),
	J(BPF_JMP | BPF_JEQ | BPF_K, 0x45, 0, 1), S(BPF_RET | BPF_K, 1),
	S(BPF_RET | BPF_K, 0),
};
static const struct sock_filter hw_ret_a0[] = { S(BPF_RET | BPF_A, 0) };
static const struct sock_filter hw_accept[] = { S(BPF_RET | BPF_K, 1) };
static const struct sock_filter hw_reject[] = { S(BPF_RET | BPF_K, 0) };

#define HW(a)	{ #a, a, sizeof(a) / sizeof(a[0]) }
static const struct {
	const char		*name;
	const struct sock_filter *insns;
	unsigned		 len;
} handwritten[] = {
	HW(hw_ret_a), HW(hw_proto_ip), HW(hw_proto_llc), HW(hw_pkttype),
	HW(hw_fields), HW(hw_len_x), HW(hw_div0), HW(hw_mod0), HW(hw_shifts),
	HW(hw_neg_alu), HW(hw_ind_edges), HW(hw_ind_wrap), HW(hw_ind_low),
	HW(hw_msh_low), HW(hw_ind_bigk), HW(hw_abs_low),
	HW(hw_ind_tail), HW(hw_ind_past), HW(hw_scratch), HW(hw_unreached),
	HW(hw_initial), HW(hw_ret_a0), HW(hw_accept), HW(hw_reject),
};

static size_t
add_corpus_filters(void)
{
	char path[512], line[1024];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/filters.txt", corpus);
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (add_expr(line, true) > 0)
			n++;
	}
	fclose(f);
	return n;
}

/* ---- the model: the kernel's meaning, held against libpcap's interpreter */

/* What the ancillary loads read: the socket buffer as the kernel has it. */
struct skbenv {
	uint32_t	 proto, pkttype, ifindex;
	uint32_t	 vlan_present, vlan_tci, vlan_tpid;
};

static uint32_t
anc_value(int32_t off, const struct skbenv *env)
{
	switch (off) {
	case SKF_AD_PROTOCOL:
		return env->proto;
	case SKF_AD_PKTTYPE:
		return env->pkttype;
	case SKF_AD_IFINDEX:
		return env->ifindex;
	case SKF_AD_VLAN_TAG:
		return env->vlan_tci;
	case SKF_AD_VLAN_TAG_PRESENT:
		return env->vlan_present;
	case SKF_AD_VLAN_TPID:
		return env->vlan_tpid;
	}
	return 0;	/* mark, queue, hash: none here */
}

/*
 * libpcap's bpf_filter() on FRAME, with each ancillary load made a
 * constant from ENV: bpf_filter() itself gives up on every ancillary load,
 * so this is the only honest comparison for them.
 */
static unsigned
pcap_model(const struct tcase *c, const uint8_t *frame, uint32_t len,
    const struct skbenv *env, struct sock_filter *tmp)
{
	const struct sock_filter *f = c->insns;
	int32_t off;
	unsigned i;

	if (c->anc) {
		memcpy(tmp, c->insns, c->len * sizeof(*tmp));
		for (i = 0; i < c->len; i++) {
			if (!is_anc(&tmp[i]))
				continue;
			off = (int32_t)tmp[i].k - SKF_AD_OFF;
			if (off == SKF_AD_ALU_XOR_X)
				tmp[i] = (struct sock_filter)
				    S(BPF_ALU | BPF_XOR | BPF_X, 0);
			else
				tmp[i] = (struct sock_filter)
				    S(BPF_LD | BPF_IMM, anc_value(off, env));
		}
		f = tmp;
	}
	return bpf_filter((const struct pcap_bpf_insn *)f, frame, len,
	    len) != 0;
}

/* Where the kernel's meaning parts from libpcap's, on one packet. */
struct apart {
	bool		 wrapped;	/* X + k past 2^32, or a shift by 32+ */
	bool		 headers;	/* a load relative to a header */
};

/*
 * The SIZE bytes at OFF in P, as the kernel's classic BPF reads them:
 * OFF is signed; from SKF_LL_OFF to 0 it would be relative to a header,
 * which the translation refuses and this model does not follow.
 */
static bool
kernel_load(const uint8_t *p, uint32_t len, int32_t off, unsigned size,
    uint32_t *v, struct apart *ap)
{
	unsigned i;

	if (off < 0) {
		ap->headers |= off >= SKF_LL_OFF;
		return false;
	}
	if ((uint64_t)off + size > len)
		return false;
	for (*v = 0, i = 0; i < size; i++)
		*v = *v << 8 | p[off + i];
	return true;
}

static uint32_t
kernel_alu(uint8_t op, uint32_t a, uint32_t b, struct apart *ap)
{
	switch (op) {
	case BPF_ADD:
		return a + b;
	case BPF_SUB:
		return a - b;
	case BPF_MUL:
		return a * b;
	case BPF_DIV:
		return a / b;
	case BPF_MOD:
		return a % b;
	case BPF_AND:
		return a & b;
	case BPF_OR:
		return a | b;
	case BPF_XOR:
		return a ^ b;
	case BPF_LSH:
		ap->wrapped |= b >= 32;
		return a << (b & 31);
	case BPF_RSH:
		ap->wrapped |= b >= 32;
		return a >> (b & 31);
	case BPF_NEG:
		return -a;
	}
	abort();
}

/* One load instruction IN, into *A or *X; false when the filter rejects. */
static bool
kernel_ld(const struct sock_filter *in, const uint8_t *p, uint32_t len,
    const struct skbenv *env, uint32_t *a, uint32_t *x, struct apart *ap)
{
	unsigned size = BPF_SIZE(in->code) == BPF_W ? 4 :
	    BPF_SIZE(in->code) == BPF_H ? 2 : 1;
	int32_t k = (int32_t)in->k;

	if (in->code == (BPF_LDX | BPF_B | BPF_MSH)) {
		if (!kernel_load(p, len, k, 1, x, ap))
			return false;
		*x = (*x & 0xf) << 2;
		return true;
	}
	if (BPF_MODE(in->code) == BPF_IND) {
		ap->wrapped |= (uint64_t)*x + in->k > UINT32_MAX;
		return kernel_load(p, len, (int32_t)(*x + in->k), size, a, ap);
	}
	if (k < 0 && k >= SKF_AD_OFF) {
		if (k - SKF_AD_OFF == SKF_AD_ALU_XOR_X)
			*a ^= *x;
		else
			*a = anc_value(k - SKF_AD_OFF, env);
		return true;
	}
	return kernel_load(p, len, k, size, a, ap);
}

static bool
kernel_jump(const struct sock_filter *in, uint32_t a, uint32_t x)
{
	uint32_t b = BPF_SRC(in->code) == BPF_X ? x : in->k;

	switch (BPF_OP(in->code)) {
	case BPF_JEQ:
		return a == b;
	case BPF_JGT:
		return a > b;
	case BPF_JGE:
		return a >= b;
	}
	return (a & b) != 0;
}

/*
 * A classic filter as the kernel runs it on a socket (net/core/filter.c):
 * 32-bit arithmetic, a shift counting modulo 32, a division by X = 0 or a
 * load outside the packet returning 0, loads at X + k at a signed 32-bit
 * offset that wraps. Whether it accepts the packet P of LEN bytes.
 */
static unsigned
kernel_model(const struct sock_filter *f, const uint8_t *p, uint32_t len,
    const struct skbenv *env, struct apart *ap)
{
	uint32_t a = 0, x = 0, m[BPF_MEMWORDS] = { 0 };
	const struct sock_filter *in;

	for (in = f;; in++) {
		switch (BPF_CLASS(in->code)) {
		case BPF_RET:
			return (BPF_RVAL(in->code) == BPF_A ? a : in->k) != 0;
		case BPF_LD:
		case BPF_LDX:
			if (BPF_MODE(in->code) == BPF_MEM)
				*(BPF_CLASS(in->code) == BPF_LD ? &a : &x) =
				    m[in->k];
			else if (BPF_MODE(in->code) == BPF_IMM)
				*(BPF_CLASS(in->code) == BPF_LD ? &a : &x) =
				    in->k;
			else if (BPF_MODE(in->code) == BPF_LEN)
				*(BPF_CLASS(in->code) == BPF_LD ? &a : &x) =
				    len;
			else if (!kernel_ld(in, p, len, env, &a, &x, ap))
				return 0;
			break;
		case BPF_ST:
		case BPF_STX:
			m[in->k] = BPF_CLASS(in->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			if (BPF_SRC(in->code) == BPF_X && x == 0 &&
			    (BPF_OP(in->code) == BPF_DIV ||
			    BPF_OP(in->code) == BPF_MOD))
				return 0;
			a = kernel_alu(BPF_OP(in->code), a,
			    BPF_SRC(in->code) == BPF_X ? x : in->k, ap);
			break;
		case BPF_MISC:
			if (BPF_MISCOP(in->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		case BPF_JMP:
			if (BPF_OP(in->code) == BPF_JA)
				in += in->k;
			else
				in += kernel_jump(in, a, x) ? in->jt : in->jf;
			break;
		}
	}
}

static uint64_t model_checks, model_apart;

/*
 * The kernel's meaning of C on FRAME, and libpcap's where it is the same:
 * they part only on shifts by 32 or more and loads at X + k past 2^32
 * (libpcap gives 0 and rejects; the kernel shifts by the count modulo 32
 * and wraps), and on loads relative to a header, which this model does not
 * follow and no translated filter reads.
 */
static unsigned
run_model(const struct tcase *c, const uint8_t *frame, uint32_t len,
    const struct skbenv *env, struct sock_filter *tmp)
{
	struct apart ap = { false, false };
	unsigned want, libpcap;

	want = kernel_model(c->insns, frame, len, env, &ap);
	CHECK_MSG(!ap.headers, "%s: a load relative to a header\n", c->name);
	libpcap = pcap_model(c, frame, len, env, tmp);
	model_checks++;
	if (ap.wrapped)
		model_apart += want != libpcap;
	else
		CHECK_MSG(want == libpcap, "%s: the kernel's meaning %u, "
		    "libpcap's %u\n", c->name, want, libpcap);
	return want;
}

/*
 * The model of a test run: protocol and pkt_type as model_skb() found
 * them, the loopback's ifindex, and no VLAN tag taken out: the test run
 * never strips one, the tag stays in the data, where bpf_filter() sees it
 * too. A fresh socket buffer has no mark, queue or hash.
 */
static unsigned
model(const struct tcase *c, const struct pkt *p, struct sock_filter *tmp)
{
	struct skbenv env = { p->proto, p->pkttype, lo.ifindex, 0, 0, 0 };

	return run_model(c, p->frame, p->len, &env, tmp);
}

/* ---- each filter alone: the test form, on every packet */

static uint32_t
test_run(int fd, const struct pkt *p, const char *what)
{
	char err[256];
	uint32_t rv = 2;

	if (bpfsys_test_run(fd, p->run, ETH_HDR + p->len, 1, &rv, NULL, err,
	    sizeof(err)) == -1)
		fprintf(stderr, "%s: %s\n", what, err);
	return rv;
}

static void
run_case(struct tcase *c, struct sock_filter *tmp)
{
	struct xlate_prog prog = { NULL, 0 };
	char err[512];
	size_t f, i;
	unsigned want;
	uint32_t got;
	int fd;

	CHECK_MSG(xlate_build_test(c->insns, c->len, &prog, err,
	    sizeof(err)) == 0, "%s: %s\n", c->name, err);
	if (prog.insns == NULL)
		return;
	fd = bpfsys_prog_load(&prog, err, sizeof(err));
	xlate_free(&prog);
	CHECK_MSG(fd >= 0, "%s: %s\n", c->name, err);
	for (f = 0; f < nfiles && fd >= 0; f++)
		for (i = 0; i < files[f].n; i++) {
			got = test_run(fd, &files[f].pkts[i], c->name);
			want = model(c, &files[f].pkts[i], tmp);
			c->compared++;
			if (got == want)
				continue;
			if (c->mismatches++ < PRINT_MAX)
				fprintf(stderr, "MISMATCH %s: %s packet %zu: "
				    "eBPF %u, the kernel's meaning %u\n",
				    c->name, files[f].name, i, got, want);
		}
	if (fd >= 0)
		close(fd);
}

/*
 * One program after the other: test runs on two CPUs at once were slower
 * than on one, here.
 */
static void
test_each(uint64_t *compared, uint64_t *mismatched)
{
	struct sock_filter *tmp;
	size_t i;

	if ((tmp = malloc(XLATE_FILTER_INSNS_MAX * sizeof(*tmp))) == NULL)
		abort();
	for (i = 0; i < ncases; i++)
		run_case(&cases[i], tmp);
	free(tmp);
	for (i = 0; i < ncases; i++) {
		CHECK_MSG(cases[i].compared == npkts, "%s: %ju of %zu "
		    "packets\n", cases[i].name,
		    (uintmax_t)cases[i].compared, npkts);
		*compared += cases[i].compared;
		*mismatched += cases[i].mismatches;
	}
	CHECK(*mismatched == 0);
}

/* ---- all at once: the counting form */

/*
 * Load the counting program of CS[0..N) on map M, with the wire lengths of
 * WIRE (NULL: Ethernet's); index i counts CS[i].
 */
static int
load_counting(struct tcase **cs, size_t n, const struct bpfsys_map *m,
    bool reversed, const struct xlate_wire *wire, char *err, size_t errlen)
{
	struct xlate_filter *fl;
	struct xlate_prog prog;
	size_t i, j;
	int fd = -1;

	if ((fl = calloc(n ? n : 1, sizeof(*fl))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		j = reversed ? n - 1 - i : i;
		fl[i] = (struct xlate_filter){ cs[j]->insns, cs[j]->len,
		    (uint32_t)j };
	}
	if (xlate_build(fl, n, m->fd, m->slots, wire, &prog, err,
	    errlen) == 0) {
		fd = bpfsys_prog_load(&prog, err, errlen);
		xlate_free(&prog);
	}
	free(fl);
	return fd;
}

/* One run of the counting form over the corpus. */
struct counting {
	struct tcase		**cs;
	size_t			 n;
	const char		*what;
	const struct xlate_wire	*wire;	/* a test run takes no VLAN tag out */
	struct bpfsys_map	 m;
	struct xlate_count	*prev;	/* the counters after the last packet */
	struct xlate_count	*sums;	/* what the model accepted */
	struct sock_filter	*tmp;
	size_t			 bad;
	uint64_t		 compared;
};

/* Each counter must have moved by what the model says of packet P. */
static void
check_packet(struct counting *r, const struct pkt *p, const char *file,
    size_t at)
{
	struct xlate_count now, d;
	unsigned want;
	uint64_t wire = p->len + (r->wire != NULL ? r->wire->hdr_len : 0);
	size_t k;

	for (k = 0; k < r->n; k++) {
		want = model(r->cs[k], p, r->tmp);
		bpfsys_map_get(&r->m, (uint32_t)k, &now);
		d.packets = now.packets - r->prev[k].packets;
		d.bytes = now.bytes - r->prev[k].bytes;
		r->prev[k] = now;
		r->sums[k].packets += want;
		r->sums[k].bytes += want * wire;
		r->compared++;
		if ((d.packets != want || d.bytes != want * wire) &&
		    r->bad++ < PRINT_MAX)
			fprintf(stderr, "MISMATCH %s: %s: %s packet %zu: "
			    "counted %ju/%ju, the model %u\n", r->what,
			    r->cs[k]->name, file, at, (uintmax_t)d.packets,
			    (uintmax_t)d.bytes, want);
	}
}

/* The totals, read back, equal the model's sums; then a clear. */
static void
check_totals(struct counting *r)
{
	struct xlate_count now;
	char err[256];
	size_t k;

	for (k = 0; k < r->n; k++) {
		CHECK(bpfsys_map_read(&r->m, (uint32_t)k, &now, err,
		    sizeof(err)) == 0);
		CHECK_MSG(now.packets == r->sums[k].packets &&
		    now.bytes == r->sums[k].bytes, "%s: %s: %ju/%ju, the model "
		    "%ju/%ju\n", r->what, r->cs[k]->name,
		    (uintmax_t)now.packets, (uintmax_t)now.bytes,
		    (uintmax_t)r->sums[k].packets, (uintmax_t)r->sums[k].bytes);
	}
	/* A cleared index reads zero; the others keep theirs. */
	CHECK(bpfsys_map_clear(&r->m, 0, err, sizeof(err)) == 0);
	CHECK(bpfsys_map_read(&r->m, 0, &now, err, sizeof(err)) == 0);
	CHECK(now.packets == 0 && now.bytes == 0);
	CHECK(bpfsys_map_read(&r->m, (uint32_t)r->n - 1, &now, err,
	    sizeof(err)) == 0);
	CHECK(now.packets == r->sums[r->n - 1].packets);
}

/*
 * Run every packet once through the program counting CS[0..N), with the
 * wire lengths of WIRE, and check, packet by packet, that each counter
 * moved by what the model says (one packet and its wire length, or
 * nothing), then the totals.
 */
static void
check_counting(struct tcase **cs, size_t n, const char *what,
    const struct xlate_wire *wire, uint64_t *compared)
{
	struct counting r = { .cs = cs, .n = n, .what = what, .wire = wire };
	char err[512];
	size_t f, i;
	int fd = -1;

	r.prev = calloc(n, sizeof(*r.prev));
	r.sums = calloc(n, sizeof(*r.sums));
	r.tmp = malloc(XLATE_FILTER_INSNS_MAX * sizeof(*r.tmp));
	CHECK_MSG(bpfsys_map_create(&r.m, SLOTS, err, sizeof(err)) == 0,
	    "%s\n", err);
	if (r.prev != NULL && r.sums != NULL && r.tmp != NULL && r.m.fd >= 0) {
		fd = load_counting(cs, n, &r.m, false, wire, err,
		    sizeof(err));
		CHECK_MSG(fd >= 0, "%s: %s\n", what, err);
	}
	for (f = 0; f < nfiles && fd >= 0; f++)
		for (i = 0; i < files[f].n; i++) {
			CHECK(test_run(fd, &files[f].pkts[i], what) == 0);
			CHECK(bpfsys_map_fetch(&r.m, err, sizeof(err)) == 0);
			check_packet(&r, &files[f].pkts[i], files[f].name, i);
		}
	CHECK_MSG(r.bad == 0, "%s: %zu mismatches\n", what, r.bad);
	if (fd >= 0) {
		check_totals(&r);
		close(fd);
	}
	*compared += r.compared;
	free(r.prev);
	free(r.sums);
	free(r.tmp);
	bpfsys_map_close(&r.m);
}

/* The corpus's filters as the daemon compiles them, in the file's order. */
static size_t
corpus_cases(struct tcase **cs, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < ncases && n < max; i++)
		if (cases[i].corpus)
			cs[n++] = &cases[i];
	return n;
}

/* The corpus filters counting as on a Linux cooked (SLL) handle, then 64. */
static void
test_counting(uint64_t *compared)
{
	static const struct xlate_wire sll = { 16, 4 };
	struct tcase *cs[SLOTS];
	size_t n, i;

	n = corpus_cases(cs, SLOTS);
	CHECK_MSG(n == 34, "%zu corpus filters, want 34\n", n);
	check_counting(cs, n, "34 corpus filters", &sll, compared);
	for (i = 0; i < ncases && n < SLOTS; i++)
		if (!cases[i].corpus)
			cs[n++] = &cases[i];
	CHECK(n == SLOTS);
	check_counting(cs, n, "64 filters", NULL, compared);
}

/* ---- what is refused, and why */

static void
refused(const struct sock_filter *f, unsigned len, const char *want)
{
	char err[256];

	CHECK_MSG(xlate_check(f, len, err, sizeof(err)) == -1 &&
	    strstr(err, want) != NULL, "want '%s', got '%s'\n", want, err);
}

static void
test_refusals(void)
{
	static const struct sock_filter net[] = {
		S(BPF_LD | BPF_B | BPF_ABS, (uint32_t)SKF_NET_OFF + 9),
		S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter ll[] = {
		S(BPF_LD | BPF_H | BPF_ABS, (uint32_t)SKF_LL_OFF + 12),
		S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter nlattr[] = {
		S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_NLATTR)),
		S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter cpu[] = {
		S(BPF_LD | BPF_W | BPF_ABS, AD(SKF_AD_CPU)),
		S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter gap[] = {
		S(BPF_LD | BPF_W | BPF_ABS, AD(2)), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter msh[] = {	/* no ancillary MSH */
		S(BPF_LDX | BPF_B | BPF_MSH, AD(SKF_AD_PROTOCOL)),
		S(BPF_RET | BPF_K, 1) };
	static const struct sock_filter msh_ll[] = {
		S(BPF_LDX | BPF_B | BPF_MSH, (uint32_t)SKF_LL_OFF + 14),
		S(BPF_RET | BPF_K, 1) };
	static const struct sock_filter ind_len[] = {	/* len < 4: -4 to -1 */
		S(BPF_LD | BPF_W | BPF_LEN, 0), S(BPF_ALU | BPF_SUB | BPF_K, 4),
		S(BPF_MISC | BPF_TAX, 0), S(BPF_LD | BPF_B | BPF_IND, 0),
		S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter ind_net[] = {	/* SKF_NET_OFF + 9 */
		S(BPF_LDX | BPF_IMM, (uint32_t)SKF_NET_OFF),
		S(BPF_LD | BPF_B | BPF_IND, 9), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter ind_scratch[] = {	/* X from M[] */
		S(BPF_LD | BPF_B | BPF_ABS, 14),
		S(BPF_ALU | BPF_SUB | BPF_K, 9), S(BPF_ST, 3),
		S(BPF_LDX | BPF_MEM, 3),
		S(BPF_LD | BPF_B | BPF_IND, 0), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter scratch[] = {
		S(BPF_LD | BPF_B | BPF_ABS, 0),
		J(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1), S(BPF_ST, 4),
		S(BPF_LD | BPF_MEM, 4), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter badop[] = {
		S(BPF_LD | BPF_DW | BPF_ABS, 0), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter div0[] = {
		S(BPF_ALU | BPF_DIV | BPF_K, 0), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter shift[] = {
		S(BPF_ALU | BPF_LSH | BPF_K, 32), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter mem16[] = {
		S(BPF_ST, 16), S(BPF_RET | BPF_A, 0) };
	static const struct sock_filter falls[] = {
		S(BPF_LD | BPF_B | BPF_ABS, 0) };
	static const struct sock_filter far[] = {
		J(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 5), S(BPF_RET | BPF_K, 1) };
	struct bpf_program prog;

	refused(net, 2, "SKF_NET_OFF");
	refused(ll, 2, "SKF_LL_OFF");
	refused(nlattr, 2, "ancillary");
	refused(cpu, 2, "ancillary");
	refused(gap, 2, "ancillary");
	refused(msh, 2, "SKF_NET_OFF");
	refused(msh_ll, 2, "SKF_LL_OFF");
	refused(ind_len, 5, "before the packet");
	refused(ind_net, 3, "before the packet");
	refused(ind_scratch, 6, "before the packet");
	refused(scratch, 5, "scratch memory");
	refused(badop, 2, "invalid instruction");
	refused(div0, 2, "invalid instruction");
	refused(shift, 2, "invalid instruction");
	refused(mem16, 2, "invalid instruction");
	refused(falls, 1, "does not end with a return");
	refused(far, 2, "jump outside");
	refused(hw_accept, 0, "1 to 4096");
	CHECK(compile(dead, "ip6 protochain 6", &prog) == 0);
	refused((struct sock_filter *)prog.bf_insns, prog.bf_len, "backward");
	pcap_freecode(&prog);
	CHECK(compile(dead, "ip[ip[8] - 100] = 0", &prog) == 0);
	refused((struct sock_filter *)prog.bf_insns, prog.bf_len,
	    "before the packet");
	pcap_freecode(&prog);
}

/* xlate_build() says which filter, and refuses indexes beyond the map. */
static void
test_build_refusals(void)
{
	struct xlate_filter fl[2] = {
		{ hw_accept, 1, 0 },
		{ hw_accept, 1, 7 },
	};
	struct xlate_prog prog;
	char err[256];

	CHECK(xlate_build(fl, 2, -1, 7, NULL, &prog, err, sizeof(err)) == -1);
	CHECK_MSG(strstr(err, "filter 1") != NULL, "%s\n", err);
	fl[1].insns = hw_accept + 1;	/* no instructions left */
	fl[1].len = 0;
	CHECK(xlate_build(fl, 2, -1, 8, NULL, &prog, err, sizeof(err)) == -1);
	CHECK_MSG(strstr(err, "filter 1 (counter 7)") != NULL, "%s\n", err);
	CHECK(xlate_build(fl, 1, -1, XLATE_SLOTS_MAX + 1, NULL, &prog, err,
	    sizeof(err)) == -1);
}

/*
 * Too long for classic BPF, and too long for eBPF's 16-bit jumps: a jump
 * over 4000 loads at X + k, which are about 20 eBPF instructions each.
 */
static void
test_too_large(void)
{
	struct sock_filter *f;
	struct xlate_prog prog;
	char err[256];
	unsigned i, n = XLATE_FILTER_INSNS_MAX;

	if ((f = calloc(n + 1, sizeof(*f))) == NULL)
		abort();
	f[0] = (struct sock_filter)S(BPF_LD | BPF_B | BPF_ABS, 0);
	f[1] = (struct sock_filter)J(BPF_JMP | BPF_JEQ | BPF_K, 5, 1, 0);
	f[2] = (struct sock_filter)J(BPF_JMP | BPF_JA, n - 4, 0, 0);
	for (i = 3; i < n - 1; i++)
		f[i] = (struct sock_filter)S(BPF_LD | BPF_H | BPF_IND, i);
	f[n - 1] = f[n] = (struct sock_filter)S(BPF_RET | BPF_K, 1);
	CHECK_MSG(xlate_build_test(f, n, &prog, err, sizeof(err)) == -1 &&
	    strstr(err, "a jump spans") != NULL, "%s\n", err);
	refused(f, n + 1, "1 to 4096");
	free(f);
}

/* The kernel's refusal comes back with the verifier's reason. */
static void
test_verifier_reason(void)
{
	struct bpf_insn bad[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .src_reg = 5 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct xlate_prog prog = { bad, 2 };
	char err[256];

	CHECK(bpfsys_prog_load(&prog, err, sizeof(err)) == -1);
	CHECK_MSG(strstr(err, "R5 !read_ok") != NULL, "%s\n", err);
	CHECK_MSG(bpfsys_available(err, sizeof(err)) == 0, "%s\n", err);
	CHECK(bpfsys_ncpus(err, sizeof(err)) >= 1);
	CHECK(count_cpus("0-3,8-11\n") == 8 && count_cpus("0") == 1 &&
	    count_cpus("2-1") == -1 && count_cpus("x") == -1);
}

/* ---- live: a veth pair, where the kernel strips VLAN tags */

struct expect {
	char		 file[128], filter[256];
	uint64_t	 packets, bytes;
};

static struct expect *expects;
static size_t nexpects;

/*
 * Rows of expected.tsv, and the live columns of disagreements.tsv: the
 * counts a live libpcap handle got, which is what this path must give.
 */
static void
read_expects(const char *name, int pcol, int bcol)
{
	char path[512], line[2048], *fld[8], *s;
	struct expect *e;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "%s/%s", corpus, name);
	CHECK_MSG((f = fopen(path, "re")) != NULL, "%s\n", path);
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		for (n = 0, s = line; n < 8 && s != NULL; n++)
			fld[n] = strsep(&s, "\t");
		if (n <= bcol || strcmp(fld[0], "file") == 0)
			continue;
		e = realloc(expects, (nexpects + 1) * sizeof(*e));
		if (e == NULL)
			break;
		expects = e;
		e = &expects[nexpects++];
		strlcpy(e->file, fld[0], sizeof(e->file));
		strlcpy(e->filter, fld[1], sizeof(e->filter));
		e->packets = strtoull(fld[pcol], NULL, 10);
		e->bytes = strtoull(fld[bcol], NULL, 10);
	}
	fclose(f);
}

static const struct expect *
find_expect(const char *file, const char *filter)
{
	size_t i;

	for (i = 0; i < nexpects; i++)
		if (strcmp(expects[i].file, file) == 0 &&
		    strcmp(expects[i].filter, filter) == 0)
			return &expects[i];
	return NULL;
}

static int
send_socket(unsigned ifindex)
{
	struct sockaddr_ll sll;
	int fd;

	if ((fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * A packet socket on interface IFINDEX that runs PROG_FD, attached before
 * the socket is bound to every protocol, as bpfsys_socket() does.
 */
static int
count_socket(unsigned ifindex, int prog_fd)
{
	struct sockaddr_ll sll;
	char err[256];
	int fd;

	if ((fd = send_socket(ifindex)) == -1)
		return -1;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)ifindex;
	if (bpfsys_attach(fd, prog_fd, err, sizeof(err)) == -1 ||
	    bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * Wait until counter 0 (the empty filter: every packet) has them all, and
 * a little more: the other CPU may be finishing its last packet.
 */
static void
settle(struct bpfsys_map *m, uint64_t want)
{
	struct xlate_count c = { 0, 0 };
	char err[256];
	int i;

	for (i = 0; i < 3000; i++) {
		if (bpfsys_map_read(m, 0, &c, err, sizeof(err)) == -1 ||
		    c.packets >= want)
			break;
		sleep_ms(1);
	}
	sleep_ms(5);
	CHECK(bpfsys_map_fetch(m, err, sizeof(err)) == 0);
}

/*
 * The model of a packet socket on the receiving veth: eth_type_trans()
 * sets pkt_type there, then skb_vlan_untag() takes an outer 802.1Q or
 * 802.1ad tag out of the data into vlan_tci before packet sockets see the
 * frame (a tagged frame too short for it is dropped). The filter runs on
 * the untagged frame, 4 bytes shorter, in BUF; SEEN is its length.
 */
static unsigned
live_model(const struct tcase *c, const struct pkt *p, struct sock_filter *tmp,
    uint8_t *buf, uint32_t *seen)
{
	struct skbenv env = { 0, 0, rx.ifindex, 0, 0, 0 };
	const uint8_t *f = p->frame;
	uint32_t len = p->len;
	uint16_t type = (uint16_t)(f[12] << 8 | f[13]);

	env.pkttype = pkt_type(f, &rx);
	if (type == ETH_P_8021Q || type == ETH_P_8021AD) {
		if (len < ETH_HDR + 6)
			return 0;
		env.vlan_present = 1;
		env.vlan_tci = (uint32_t)(f[14] << 8 | f[15]);
		env.vlan_tpid = type;
		memcpy(buf, f, 12);
		memcpy(buf + 12, f + 16, len - 16);
		len -= 4;
		f = buf;
		type = (uint16_t)(f[12] << 8 | f[13]);
	}
	env.proto = eth_proto(type, f + ETH_HDR, len - ETH_HDR);
	*seen = len;
	return run_model(c, f, len, &env, tmp);
}

struct live {
	struct tcase	 lc[SLOTS];	/* name: the expression */
	struct tcase	*cs[SLOTS];
	size_t		 n, ncorpus;	/* the first ncorpus: filters.txt */
	struct bpfsys_map m;
	struct bpfsys_map m2;		/* the same, counting as SLL2 does */
	int		 sock, sock2, tx;
	struct sock_filter *tmp;
	uint8_t		 buf[2048];
};

/*
 * Filter I's count over F must be the model's, and the corpus's if listed;
 * as SLL2 counts, each packet is 20 bytes more than the filter saw, with
 * no VLAN tag put back.
 */
static void
check_live(struct live *l, const struct file *f, size_t i, uint64_t *compared)
{
	struct xlate_count c, c2, want = { 0, 0 }, want2 = { 0, 0 };
	const struct expect *e;
	uint32_t seen;
	size_t k;

	bpfsys_map_get(&l->m, (uint32_t)i, &c);
	bpfsys_map_get(&l->m2, (uint32_t)i, &c2);
	for (k = 0; k < f->n; k++)
		if (live_model(&l->lc[i], &f->pkts[k], l->tmp, l->buf, &seen)) {
			want.packets++;
			want.bytes += f->pkts[k].len;
			want2.packets++;
			want2.bytes += seen + 20;
		}
	(*compared) += 2;
	CHECK_MSG(c.packets == want.packets && c.bytes == want.bytes,
	    "live %s '%s': %ju/%ju, the model %ju/%ju\n", f->name,
	    l->lc[i].name, (uintmax_t)c.packets, (uintmax_t)c.bytes,
	    (uintmax_t)want.packets, (uintmax_t)want.bytes);
	CHECK_MSG(c2.packets == want2.packets && c2.bytes == want2.bytes,
	    "live %s '%s' as SLL2: %ju/%ju, the model %ju/%ju\n", f->name,
	    l->lc[i].name, (uintmax_t)c2.packets, (uintmax_t)c2.bytes,
	    (uintmax_t)want2.packets, (uintmax_t)want2.bytes);
	if (i >= l->ncorpus)
		return;
	e = find_expect(f->name, l->lc[i].name);
	CHECK_MSG(e != NULL, "%s '%s': no expected counts\n", f->name,
	    l->lc[i].name);
	if (e == NULL)
		return;
	(*compared)++;
	CHECK_MSG(c.packets == e->packets && c.bytes == e->bytes,
	    "live %s '%s': %ju/%ju, expected %ju/%ju\n", f->name,
	    l->lc[i].name, (uintmax_t)c.packets, (uintmax_t)c.bytes,
	    (uintmax_t)e->packets, (uintmax_t)e->bytes);
}

/* Send file F, then check every filter's counts. */
static void
replay(struct live *l, const struct file *f, uint64_t *compared)
{
	char err[256];
	size_t i;

	for (i = 0; i < l->n; i++)
		CHECK(bpfsys_map_clear(&l->m, (uint32_t)i, err,
		    sizeof(err)) == 0 && bpfsys_map_clear(&l->m2, (uint32_t)i,
		    err, sizeof(err)) == 0);
	for (i = 0; i < f->n; i++)
		CHECK_MSG(send(l->tx, f->pkts[i].frame, f->pkts[i].len, 0) ==
		    (ssize_t)f->pkts[i].len, "%s packet %zu: %s\n", f->name, i,
		    strerror(errno));
	settle(&l->m, f->n);
	settle(&l->m2, f->n);
	for (i = 0; i < l->n; i++)
		check_live(l, f, i, compared);
}

static void
add_live(struct live *l, const char *expr)
{
	struct bpf_program prog;

	if (l->n == SLOTS || compile(live, expr, &prog) == -1) {
		CHECK_MSG(false, "'%s': %s\n", expr, pcap_geterr(live));
		return;
	}
	set_case(&l->lc[l->n], expr, (struct sock_filter *)prog.bf_insns,
	    prog.bf_len);
	l->cs[l->n] = &l->lc[l->n];
	l->n++;
	pcap_freecode(&prog);
}

/*
 * The corpus filters compiled on the receiving veth, as the daemon would,
 * then some of our own on what the kernel takes out of the frame: the
 * corpus's tagged frames have VLAN 1611 (ndpi-stun), 3394 then 113
 * (ndpi-zoom) and 3704 then 2474 (zeek-pppoe-over-qinq).
 */
static int
live_filters(struct live *l)
{
	static const char *own[] = {
		"vlan 1611", "vlan 113", "vlan 3394 and vlan 113",
		"vlan 3704 and vlan 2474", "vlan and tcp",
		"not vlan and less 100", "inbound", "outbound",
	};
	char path[512], line[256];
	size_t i;
	FILE *f;

	snprintf(path, sizeof(path), "%s/filters.txt", corpus);
	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		add_live(l, line);
	}
	fclose(f);
	l->ncorpus = l->n;
	for (i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		add_live(l, own[i]);
	snprintf(line, sizeof(line), "ifindex %u", rx.ifindex);
	add_live(l, line);
	return 0;
}

/*
 * Half the files with one program, then the same filters in the opposite
 * order swapped in on the same socket: the counters go on, exactly. A
 * second socket counts the same filters as an SLL2 handle would.
 */
static void
test_live(uint64_t *compared)
{
	static const struct xlate_wire sll2 = { 20, 0 };
	struct tpacket_stats st;
	socklen_t stlen = sizeof(st);
	struct live l;
	char err[512];
	size_t f;
	int fd;

	memset(&l, 0, sizeof(l));
	read_expects("expected.tsv", 2, 3);
	read_expects("disagreements.tsv", 4, 5);
	if ((l.tmp = malloc(XLATE_FILTER_INSNS_MAX * sizeof(*l.tmp))) == NULL ||
	    live_filters(&l) == -1)
		return;
	CHECK(bpfsys_map_create(&l.m, SLOTS, err, sizeof(err)) == 0);
	fd = load_counting(l.cs, l.n, &l.m, false, NULL, err, sizeof(err));
	CHECK_MSG(fd >= 0, "%s\n", err);
	l.sock = bpfsys_socket((int)rx.ifindex, SOCK_RAW, fd, err,
	    sizeof(err));
	CHECK_MSG(l.sock >= 0, "%s\n", err);
	close(fd);
	CHECK(bpfsys_map_create(&l.m2, SLOTS, err, sizeof(err)) == 0);
	fd = load_counting(l.cs, l.n, &l.m2, false, &sll2, err, sizeof(err));
	CHECK_MSG(fd >= 0, "%s\n", err);
	CHECK((l.sock2 = count_socket(rx.ifindex, fd)) >= 0);
	close(fd);
	CHECK((l.tx = send_socket(if_nametoindex(SEND_IF))) >= 0);
	for (f = 0; f < nfiles && l.sock >= 0 && l.sock2 >= 0 && l.tx >= 0;
	    f++) {
		if (f == nfiles / 2) {
			fd = load_counting(l.cs, l.n, &l.m, true, NULL, err,
			    sizeof(err));
			CHECK_MSG(fd >= 0 && bpfsys_attach(l.sock, fd, err,
			    sizeof(err)) == 0, "%s\n", err);
			close(fd);
		}
		replay(&l, &files[f], compared);
	}
	/* Nothing was queued to the socket, and nothing dropped. */
	CHECK(getsockopt(l.sock, SOL_PACKET, PACKET_STATISTICS, &st,
	    &stlen) == 0 && st.tp_packets == 0 && st.tp_drops == 0);
	CHECK(recv(l.sock, err, sizeof(err), MSG_DONTWAIT) == -1 &&
	    errno == EAGAIN);
	close(l.sock);
	close(l.sock2);
	close(l.tx);
	bpfsys_map_close(&l.m);
	bpfsys_map_close(&l.m2);
	for (f = 0; f < l.n; f++)
		free(l.lc[f].insns);
	free(l.tmp);
}

/* ---- the network namespace */

static int
write_file(const char *path, const char *s)
{
	FILE *f;
	int rc;

	if ((f = fopen(path, "we")) == NULL)
		return -1;
	rc = fputs(s, f) < 0 ? -1 : 0;
	return fclose(f) == 0 ? rc : -1;
}

/*
 * A namespace of our own: its loopback is the test run's device, and a
 * veth pair in it sees only what the test sends. Without IPv6 and without
 * addresses the kernel sends nothing on its own; GRO is off on veth.
 */
static int
net_setup(void)
{
	char ebuf[PCAP_ERRBUF_SIZE];

	if (unshare(CLONE_NEWNET) == -1) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	if (system("ip link set lo up && ip link add " SEND_IF " type veth "
	    "peer name " RECV_IF " && ip link set " SEND_IF " up && "
	    "ip link set " RECV_IF " up") != 0)
		return -1;
	if (read_dev("lo", &lo) == -1 || read_dev(RECV_IF, &rx) == -1)
		return -1;
	dead = pcap_open_dead(DLT_EN10MB, SNAPLEN);
	if ((live = pcap_create(RECV_IF, ebuf)) == NULL)
		return -1;
	pcap_set_snaplen(live, SNAPLEN);
	if (pcap_activate(live) < 0) {
		fprintf(stderr, "%s: %s\n", RECV_IF, pcap_geterr(live));
		return -1;
	}
	return dead == NULL ? -1 : 0;
}

/* ---- what it costs */

/*
 * The mean run time over a sample of the corpus, from the kernel's own
 * clock (BPF_PROG_TEST_RUN with repeat); the program that returns at once
 * gives what the test harness itself costs per run.
 */
static double
cost(int fd)
{
	uint32_t rv, ns;
	char err[256];
	double sum = 0;
	size_t f, i, n = 0;

	for (f = 0; f < nfiles; f++)
		for (i = 0; i < files[f].n; i += 16, n++) {
			if (bpfsys_test_run(fd, files[f].pkts[i].run, ETH_HDR +
			    files[f].pkts[i].len, 200, &rv, &ns, err,
			    sizeof(err)) == -1)
				return -1;
			sum += ns;
		}
	return n ? sum / (double)n : -1;
}

/*
 * A program that returns at once gives what the test run itself costs;
 * the rest is the counting program: the lookup, the prefix copy, the
 * filters. Printed, not checked: the machine may be busy.
 */
static void
measure(void)
{
	static const size_t sizes[] = { 0, 1, 34, SLOTS };
	struct tcase *cs[SLOTS];
	struct xlate_prog prog;
	struct bpfsys_map m;
	char err[512];
	double base = -1, ns;
	size_t n, i;
	int fd;

	n = corpus_cases(cs, SLOTS);
	for (i = 0; i < ncases && n < SLOTS; i++)
		if (!cases[i].corpus)
			cs[n++] = &cases[i];
	if (n < SLOTS || bpfsys_map_create(&m, SLOTS, err, sizeof(err)) == -1)
		return;
	if (xlate_build_test(hw_reject, 1, &prog, err, sizeof(err)) == 0) {
		if ((fd = bpfsys_prog_load(&prog, err, sizeof(err))) >= 0) {
			base = cost(fd);
			close(fd);
		}
		xlate_free(&prog);
	}
	printf("cost per packet over the corpus, the test run's own %.1f ns "
	    "taken off:", base);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* One filter: the 11th, 'tcp port 80 or tcp port 443'. */
		fd = load_counting(cs + (sizes[i] == 1 ? 10 : 0), sizes[i], &m,
		    false, NULL, err, sizeof(err));
		ns = fd >= 0 ? cost(fd) - base : -1;
		printf(" %zu filters %.1f ns%s", sizes[i], ns,
		    i + 1 < sizeof(sizes) / sizeof(sizes[0]) ? ";" : "\n");
		if (fd >= 0)
			close(fd);
	}
	bpfsys_map_close(&m);
}

/* Seconds since the previous call, for the phases' report. */
static double
lap(void)
{
	static struct timespec last;
	struct timespec now;
	double s;

	clock_gettime(CLOCK_MONOTONIC, &now);
	s = (double)(now.tv_sec - last.tv_sec) +
	    (double)(now.tv_nsec - last.tv_nsec) / 1e9;
	last = now;
	return s;
}

int
main(void)
{
	uint64_t each = 0, each_bad = 0, counted = 0, lived = 0;
	size_t i, ncorpus, pcorpus, nown = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	lap();
	corpus = getenv("CAPSTATS_CORPUS");
	if (corpus == NULL || *corpus == '\0')
		corpus = access("/work/shared/corpus/filters.txt", R_OK) == 0 ?
		    "/work/shared/corpus" : "../shared/corpus";
	if (net_setup() == -1 || load_corpus() == -1) {
		fprintf(stderr, "test_xlate: cannot set up (root? ip? corpus "
		    "in %s?)\n", corpus);
		return 1;
	}
	CHECK_MSG(npkts >= MIN_PACKETS, "%zu packets in %s\n", npkts, corpus);
	ncorpus = add_corpus_filters();
	pcorpus = ncases;
	CHECK(ncorpus == 34);
	for (i = 0; i < sizeof(own_exprs) / sizeof(own_exprs[0]); i++)
		nown += add_expr(own_exprs[i], false);
	for (i = 0; i < sizeof(handwritten) / sizeof(handwritten[0]); i++)
		add_case(handwritten[i].name, handwritten[i].insns,
		    handwritten[i].len);
	CHECK_MSG(ncases >= MIN_CASES, "%zu programs\n", ncases);

	test_refusals();
	test_build_refusals();
	test_too_large();
	test_verifier_reason();
	printf("set-up and refusals: %.1f s\n", lap());
	test_each(&each, &each_bad);
	printf("each filter alone: %zu programs (%zu from the %zu corpus "
	    "expressions, %zu from our own, %zu hand-written) x %zu packets in "
	    "%zu files: %ju comparisons, %ju mismatches (%.1f s)\n", ncases,
	    pcorpus, ncorpus, nown, sizeof(handwritten) /
	    sizeof(handwritten[0]), npkts, nfiles, (uintmax_t)each,
	    (uintmax_t)each_bad, lap());
	CHECK(each >= (uint64_t)MIN_CASES * MIN_PACKETS);
	printf("the model: %ju runs held against libpcap's, which means "
	    "otherwise in %ju (shifts by 32 or more, X + k past 2^32)\n",
	    (uintmax_t)model_checks, (uintmax_t)model_apart);
	CHECK(model_apart > 0);
	test_counting(&counted);
	printf("all at once: %ju per-packet counter comparisons (%.1f s)\n",
	    (uintmax_t)counted, lap());
	test_live(&lived);
	printf("live on veth: %ju counts of (file, filter) against the model "
	    "and the corpus's live counts (%.1f s)\n", (uintmax_t)lived, lap());
	/*
	 * The corpus's 34 filters against the model, counting as Ethernet
	 * and as SLL2, and against the corpus; our 9 against the model.
	 */
	CHECK(lived == nfiles * (34 * 3 + 9 * 2));
	measure();
	return check_done("test_xlate");
}
