/*
 * bpfsys.h: the kernel side of in-kernel counting: the per-CPU counter
 * map, loading the programs xlate.h builds, the packet socket they run on,
 * and reading the counters back. Like xlate.h it includes no <linux/bpf.h>.
 *
 * The intended use, for every interface with sessions on this path:
 *	bpfsys_progs_create(links)		once: the chain's programs
 *	xlate_build_head(progs)			the program the socket runs
 *	bpfsys_socket(ifindex, type, head_fd)	once; then close(head_fd)
 * and for each link of the chain, a group of at most slots sessions:
 *	bpfsys_map_create(&m, slots)		once; its counters live here
 *	xlate_build_chain(filters, n, m.fd, m.slots, wire, progs, link + 1)
 *	bpfsys_prog_load(&prog)			then xlate_free(&prog)
 *	bpfsys_progs_set(progs, link, prog_fd)	then close(prog_fd)
 * again on every new, modified or stopped session of the link: the map
 * stays, so every other session's counters go on, and the other links are
 * not touched. Read with bpfsys_map_fetch() and bpfsys_map_get();
 * bpfsys_map_clear() an index before reusing it.
 * Needs root (CAP_BPF, CAP_PERFMON, CAP_NET_RAW) and Linux 5.12 or
 * later: the programs compare with BPF_JMP32 and read the stack at
 * variable offsets, which only privileged programs may.
 */
#ifndef CAPSTATS_BPFSYS_H
#define CAPSTATS_BPFSYS_H

#include <stddef.h>
#include <stdint.h>

#include "xlate.h"

/*
 * The counter map: one BPF_MAP_TYPE_PERCPU_ARRAY key holding SLOTS
 * struct xlate_count per CPU, and what user space keeps of it.
 */
struct bpfsys_map {
	int			 fd;
	uint32_t		 slots;
	unsigned		 ncpus;	/* possible CPUs: copies of the value */
	struct xlate_count	*cpu;	/* the last fetch, ncpus * slots */
	struct xlate_count	*base;	/* per slot: the sums when cleared */
};

/*
 * Whether this kernel loads and attaches what xlate_build() emits: loads
 * a small counting program with every kind of code it can emit, attaches
 * it to an unbound packet socket and removes it all. 0, or -1 with the
 * reason in WHY.
 */
int	bpfsys_available(char *why, size_t whylen);

/* The number of possible CPUs, as per-CPU maps count them; -1 on error. */
int	bpfsys_ncpus(char *err, size_t errlen);

/*
 * Create a map of SLOTS counter indexes (1 to XLATE_SLOTS_MAX), all zero.
 * Every fetch copies ncpus * SLOTS * 16 bytes: size it to the sessions
 * that can share one interface, not more.
 */
int	bpfsys_map_create(struct bpfsys_map *, uint32_t slots, char *err,
	    size_t errlen);
void	bpfsys_map_close(struct bpfsys_map *);

/* Copy every CPU's counters of every index, with one system call. */
int	bpfsys_map_fetch(struct bpfsys_map *, char *err, size_t errlen);

/*
 * INDEX's counters (below slots) summed over the CPUs at the last fetch,
 * minus what they were at its last clear.
 */
void	bpfsys_map_get(const struct bpfsys_map *, uint32_t index,
	    struct xlate_count *);

/* Fetch, then get INDEX. */
int	bpfsys_map_read(struct bpfsys_map *, uint32_t index,
	    struct xlate_count *, char *err, size_t errlen);

/*
 * Make INDEX read zero from now on. The kernel's copy is not written: a
 * write replaces every index's value and would lose what other indexes
 * counted meanwhile. Instead the current sums become INDEX's base, which
 * later reads subtract. Call it once the programs that count to INDEX
 * have been replaced, before a program that counts to it is attached.
 */
int	bpfsys_map_clear(struct bpfsys_map *, uint32_t index, char *err,
	    size_t errlen);

/*
 * Load PROG as a socket filter: its descriptor, or -1 with the kernel's
 * reason in ERR (the verifier's last words when it refused the program).
 */
int	bpfsys_prog_load(const struct xlate_prog *prog, char *err,
	    size_t errlen);

/*
 * A program array (BPF_MAP_TYPE_PROG_ARRAY) of N programs, for the links
 * of a chain (xlate_build_chain()); its descriptor, or -1.
 */
int	bpfsys_progs_create(uint32_t n, char *err, size_t errlen);

/*
 * Put PROG_FD at INDEX of the program array PROGS, or empty the index
 * when PROG_FD is -1; packets run the old link or the new one, never
 * neither. The array keeps its own reference to the program.
 */
int	bpfsys_progs_set(int progs, uint32_t index, int prog_fd, char *err,
	    size_t errlen);

/* A hash map of u32 keys and VALUE_SIZE-byte values, N at most; its fd or -1. */
int	bpfsys_hash_create(uint32_t value_size, uint32_t n, char *err,
	    size_t errlen);

/*
 * Get, set or delete the element KEY of the map FD: 0, 1 when there is no
 * such element (get, delete), or -1 with the reason in ERR.
 */
#define BPFSYS_GET	0
#define BPFSYS_SET	1
#define BPFSYS_DEL	2
int	bpfsys_elem(int fd, int op, uint32_t key, void *value, char *err,
	    size_t errlen);

/*
 * A packet socket of TYPE (SOCK_RAW: packets from their link-layer header;
 * SOCK_DGRAM: from their network header) that runs PROG_FD on every packet
 * of interface IFINDEX (0: of every interface), both directions, and
 * queues nothing (the program returns 0; the receive buffer is the
 * smallest anyway). The program is attached before the socket is bound,
 * so no packet is queued unfiltered. Close it to stop.
 */
int	bpfsys_socket(int ifindex, int type, int prog_fd, char *err,
	    size_t errlen);

/*
 * Replace the program SOCK runs with PROG_FD, atomically: each packet runs
 * either the old program or the new one. The socket keeps its own
 * reference; the caller may close PROG_FD afterwards.
 */
int	bpfsys_attach(int sock, int prog_fd, char *err, size_t errlen);

/*
 * Run PROG_FD REPEAT times (at least once) on the packet DATA of LEN
 * bytes with BPF_PROG_TEST_RUN, for tests and measurements; its return
 * value and the mean run time in ns. The kernel strips the first 14 bytes
 * as an Ethernet header (eth_type_trans) before the program sees the rest.
 */
int	bpfsys_test_run(int prog_fd, const void *data, size_t len,
	    uint32_t repeat, uint32_t *retval, uint32_t *ns, char *err,
	    size_t errlen);

#endif
