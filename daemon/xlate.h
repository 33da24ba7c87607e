/*
 * xlate.h: translation of classic BPF filters, as pcap_compile() emits them
 * for a Linux interface, into one eBPF socket filter that counts what each
 * filter accepts in a per-CPU map and queues nothing to user space.
 *
 * The counter map (see bpfsys.h) is a BPF_MAP_TYPE_PERCPU_ARRAY with a
 * single key, 0, whose value is an array of struct xlate_count, one per
 * counter index: the program does one lookup per packet however many
 * filters accept it, where one key per index would cost a lookup per match.
 *
 * This header includes no <linux/bpf.h>, whose struct bpf_insn clashes with
 * libpcap's: a file that uses libpcap can include it.
 */
#ifndef CAPSTATS_XLATE_H
#define CAPSTATS_XLATE_H

#include <linux/filter.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Counter indexes one map holds: a per-CPU value is at most 32 KiB and an
 * eBPF load reaches at most 32767 bytes past the value's start.
 */
#define XLATE_SLOTS_MAX		2048
#define XLATE_FILTER_INSNS_MAX	BPF_MAXINSNS	/* the kernel's, for a classic filter */

/* One counter: what the filters with its index accepted. */
struct xlate_count {
	uint64_t	packets;
	uint64_t	bytes;		/* wire length: see struct xlate_wire */
};

/*
 * What libpcap counts in a packet's length beyond what a filter sees
 * (skb->len): a header of its own, and the VLAN tag that the kernel took
 * out of the packet when libpcap puts it back. Ethernet { 0, 4 }; Linux
 * cooked captures SLL { 16, 4 } and SLL2 { 20, 0 }; raw IP { 0, 0 }.
 */
struct xlate_wire {
	uint32_t	hdr_len;
	uint32_t	vlan_len;	/* added when a tag was taken out */
};

#define XLATE_WIRE_MAX		65535	/* each of hdr_len and vlan_len */

/*
 * One classic filter. pcap's struct bpf_insn and the kernel's struct
 * sock_filter have the same layout: pass a struct bpf_program as
 * { (const struct sock_filter *)prog.bf_insns, prog.bf_len, index }.
 * Compile it on an activated live handle of the interface: only there does
 * libpcap test the VLAN tag the kernel took out of the packet, which this
 * path does not see in the data either.
 */
struct xlate_filter {
	const struct sock_filter	*insns;
	unsigned			 len;
	uint32_t			 index;	/* counter, < the map's slots */
};				/* filters that share an index add up */

/*
 * An eBPF program of type BPF_PROG_TYPE_SOCKET_FILTER: LEN instructions of
 * 8 bytes (struct bpf_insn of <linux/bpf.h>), for bpfsys_prog_load().
 */
struct xlate_prog {
	void	*insns;
	size_t	 len;
};

/*
 * Translate the N filters into one program that runs each in turn on every
 * packet and, for each that accepts, adds 1 to its index's packets and the
 * packet's wire length to its bytes, in the map MAP_FD of SLOTS indexes;
 * the program returns 0, so the socket queues nothing. The wire length is
 * skb->len plus WIRE's hdr_len, plus its vlan_len when the kernel took a
 * VLAN tag out of the packet; WIRE NULL is Ethernet's { 0, 4 }.
 *
 * Each filter means what it means to the kernel when attached with
 * SO_ATTACH_FILTER (net/core/filter.c, bpf_convert_filter()), not what
 * libpcap's bpf_filter() makes of it:
 *  - A and X start at 0; M[] is read only after a write on every path
 *    (else the kernel refuses the program, and so does this). Arithmetic
 *    is on 32 bits and wraps; a shift by X shifts by X % 32; a division
 *    or remainder by X = 0 makes the filter reject, as its return of 0
 *    would. LEN is skb->len.
 *  - A load at k, or at X + k computed on 32 bits (so it wraps), is a
 *    signed offset. From 0, it reads the packet, paged data too, if all
 *    of its bytes are within skb->len, else the filter rejects. Below
 *    SKF_LL_OFF it reads nothing and the filter rejects.
 *  - From SKF_AD_OFF to 0, a BPF_LD|BPF_ABS (only) is an ancillary load,
 *    whatever its size: protocol, pkttype, ifindex, mark, queue, rxhash,
 *    VLAN tag, tag present, TPID and A ^= X read what the kernel's do
 *    (ifindex reads 0 for a packet without a device, where the kernel's
 *    returns A; packet sockets always have one). The others (netlink
 *    attributes, device type, CPU, random, payload offset) are refused.
 *  - From SKF_LL_OFF to 0 otherwise (MSH included), the kernel reads
 *    relative to the link-layer or network header: in the linear data
 *    only, until Linux 6.15 (and the stable kernels that took the change)
 *    read paged data too, at any distance. A socket filter has no helper
 *    that does the same on every kernel (bpf_skb_load_bytes_relative()
 *    reads at most 0xffff bytes past the header, and only linear data; an
 *    eBPF LD_IND would, but ends the whole program when it fails, and in a
 *    subprogram needs BTF): such loads are refused. For loads at X + k,
 *    the translation follows the values A, X and M[] may hold on every
 *    path (narrowed by compares of A) and refuses only where X + k may
 *    fall there. libpcap emits none unless the expression indexes with
 *    such values: "ip[ip[8] - 100]", "ether[len - 4:4]" (len may be < 4).
 *  - RET A and RET k accept when the value is not 0.
 *
 * Returns 0 and fills OUT (free it with xlate_free()), or -1 with the reason
 * in ERR: a filter uses what cannot be translated (see above), is not a
 * valid classic program (what the kernel refuses, and a backward jump), or
 * the result would be too large. A program that translates may still be
 * refused by the kernel's verifier; bpfsys_prog_load() says why. The
 * verifier follows at most 8192 pending branches, which 1000 to 1500
 * filters like the corpus's reach: split larger sets. Allocates; no system
 * call of its own.
 */
int	xlate_build(const struct xlate_filter *filters, size_t n, int map_fd,
	    uint32_t slots, const struct xlate_wire *wire,
	    struct xlate_prog *out, char *err, size_t errlen);

/*
 * A family: filters that are one program but for the constant their JEQ
 * tests compare A with at some instructions, the sites: `host A.B.C.D`,
 * `tcp port P`, `vlan V` or `net N/len` for many values. A family's
 * program runs once a packet, whatever its number of members, and looks up
 * what A held at each site among the members' constants, a key of the
 * hash map MEMBERS_FD (BPF_MAP_TYPE_HASH, u32 -> struct xlate_members):
 * only the members of a value found run, each verdict exactly its own.
 * Adding or removing a member changes the map, not the program.
 */
#define XLATE_SITES_MAX		16
#define XLATE_MEMBERS_MAX	8	/* members with one constant */
#define XLATE_NO_MEMBER		0xffff
#define XLATE_PINS_MAX		8

struct xlate_members {
	uint16_t	index[XLATE_MEMBERS_MAX];	/* counters; then XLATE_NO_MEMBER */
};

/*
 * A member whose listing is changing: it counts only when found under
 * KEY, or, when EXCLUDED, not through the map at all (its filter is then
 * one of the chain link's own). The program that names it takes over from
 * the one before it at once, so a member moves from one constant to
 * another, or out of the family, without a packet counted twice or lost.
 */
struct xlate_pin {
	uint32_t	index;
	uint32_t	key;
	bool		excluded;
};

struct xlate_family {
	const struct sock_filter *skel;		/* one member's program */
	unsigned		 len;
	const uint8_t		*site;		/* per instruction: 0, or site 1..n */
	int			 members_fd;
	const struct xlate_pin	*pins;
	size_t			 npins;		/* at most XLATE_PINS_MAX */
};

/*
 * Whether F and G, of LEN instructions each, are members of one family:
 * the same program but for the constants of up to XLATE_SITES_MAX JEQ
 * tests, one constant in all of F's and one in all of G's, and where no
 * site's test holds, the program rejects. Fills SITE[LEN]: 0, or the site
 * numbered from 1. 0, or -1 when they are not.
 */
int	xlate_family(const struct sock_filter *f, const struct sock_filter *g,
	    unsigned len, uint8_t *site);

/* Whether F is a member of the family of SKEL and SITE: its constant in KEY. */
int	xlate_family_key(const struct sock_filter *skel, const uint8_t *site,
	    const struct sock_filter *f, unsigned len, uint32_t *key);

/*
 * As xlate_build(), for one link of a chain of programs that count an
 * interface's sessions in turn, with the members of FAM too when it is
 * not NULL (the counter indexes in its map are this link's): after its
 * filters the program tail-calls
 * the one at index NEXT of the program array NEXT_FD, and returns 0 when
 * that index is empty. A chain counts more sessions than one program can
 * hold (a socket's filter is charged to net.core.optmem_max; programs in
 * an array are not), and one link changes without the others. The kernel
 * follows at most 33 tail calls a packet.
 */
int	xlate_build_chain(const struct xlate_filter *filters, size_t n,
	    int map_fd, uint32_t slots, const struct xlate_wire *wire,
	    const struct xlate_family *fam, int next_fd, uint32_t next,
	    struct xlate_prog *out, char *err, size_t errlen);

/* The program a chain's socket runs: it tail-calls index 0 of PROGS_FD. */
int	xlate_build_head(int progs_fd, struct xlate_prog *out, char *err,
	    size_t errlen);

/*
 * The same translation of one filter, for tests: the program returns 1
 * when the filter accepts and 0 when it rejects, and needs no map.
 */
int	xlate_build_test(const struct sock_filter *insns, unsigned len,
	    struct xlate_prog *out, char *err, size_t errlen);

/* Whether one filter translates: 0, or -1 with the reason in ERR. */
int	xlate_check(const struct sock_filter *insns, unsigned len,
	    char *err, size_t errlen);

void	xlate_free(struct xlate_prog *);

#endif
