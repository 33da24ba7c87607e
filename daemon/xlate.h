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

#include <stddef.h>
#include <stdint.h>

/*
 * Counter indexes one map holds: a per-CPU value is at most 32 KiB and an
 * eBPF load reaches at most 32767 bytes past the value's start.
 */
#define XLATE_SLOTS_MAX		2048
#define XLATE_FILTER_INSNS_MAX	4096	/* the kernel's BPF_MAXINSNS */

/* One counter: what the filters with its index accepted. */
struct xlate_count {
	uint64_t	packets;
	uint64_t	bytes;		/* wire length, VLAN tag included */
};

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
 * the length the filter sees plus 4 when the kernel took the outer VLAN tag
 * out of the packet (libpcap puts it back and counts it).
 *
 * Each filter keeps classic BPF's meaning: a load outside the packet or a
 * division by zero makes that filter reject and the next one run. Filters
 * see the packet as a classic filter on the same socket does: ancillary
 * loads (SKF_AD_*) read the same socket buffer fields. Where libpcap's
 * bpf_filter() and the kernel's classic interpreter differ, libpcap's
 * meaning is kept: a shift by X >= 32 gives 0 (the kernel shifts by X % 32)
 * and a load at X + k beyond 4 GiB rejects (the kernel wraps the offset);
 * pcap_compile() emits neither unless the expression itself shifts by, or
 * indexes with, such values.
 *
 * Returns 0 and fills OUT (free it with xlate_free()), or -1 with the reason
 * in ERR: a filter uses what cannot be translated (a load relative to the
 * network or link header, an unknown ancillary load, a backward jump...),
 * is not a valid classic program, or the result would be too large. A
 * program that translates may still be refused by the kernel's verifier;
 * bpfsys_prog_load() says why. The verifier follows at most 8192 pending
 * branches, which 1000 to 1500 filters like the corpus's reach: split
 * larger sets. Allocates; no system call of its own.
 */
int	xlate_build(const struct xlate_filter *filters, size_t n, int map_fd,
	    uint32_t slots, struct xlate_prog *out, char *err, size_t errlen);

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
