/*
 * writer.h: the daemon's side of the segment. Only the daemon includes it.
 * Nothing here blocks, allocates after shmw_create(), or makes a system
 * call, except shmw_create() and shmw_destroy().
 */
#ifndef CAPSTATS_WRITER_H
#define CAPSTATS_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "capstats.h"

/* A stopped session's entry is kept this long before it may be reused. */
#define SHMW_REUSE_NS	(2ull * 1000000000ull)

struct shmw;

/* What the meta block says about a session. Strings are truncated to fit. */
struct shmw_desc {
	uint32_t	 state;		/* enum capstats_state */
	uint32_t	 mode;		/* enum capstats_mode */
	uint32_t	 flags;		/* CAPSTATS_F_MODE_*; the writer sets FILTER_TRUNCATED */
	uint64_t	 created_ns;	/* CLOCK_REALTIME */
	uint64_t	 modified_ns;	/* CLOCK_REALTIME */
	const char	*name;
	const char	*iface;
	const char	*filter;
	const char	*error;		/* "" or NULL when none */
};

/* What the counters block says. */
struct shmw_counts {
	uint64_t	packets;
	uint64_t	bytes;
	uint64_t	drops;
	uint64_t	if_drops;
	uint64_t	last_packet_ns;	/* CLOCK_REALTIME */
	uint32_t	state;
	uint32_t	mode;
};

/*
 * Build a new segment NAME (as for shm_open) with SLOTS entries, mode 0640,
 * group GID, under a random temporary name, and publish it by rename(2)
 * over any old one, which is first marked SUPERSEDED if it is a genuine
 * root-owned capstats segment. HEARTBEAT_NS is recorded for readers.
 * On failure returns NULL with a message in err.
 */
struct shmw *shmw_create(const char *name, gid_t gid, uint32_t slots,
    uint64_t heartbeat_ns, char *err, size_t errlen);

/* Mark the segment CLOSED, unlink it if the name still points to it, unmap. */
void shmw_destroy(struct shmw *);

uint64_t shmw_instance(const struct shmw *);
/*
 * What another user had put at the segment's name, which shmw_create()
 * removed or moved aside, for the log; NULL when nothing was in the way.
 */
const char *shmw_vacated(const struct shmw *);
uint32_t shmw_slots(const struct shmw *);

/* Refresh the heartbeat (CLOCK_MONOTONIC ns). */
void shmw_heartbeat(struct shmw *, uint64_t now_ns);

/*
 * Take a slot for a new session: a never used one, else one stopped more
 * than SHMW_REUSE_NS before NOW_NS (CLOCK_MONOTONIC). Returns -1 if none.
 * The slot is not visible until shmw_start().
 */
int shmw_alloc(struct shmw *, uint64_t now_ns);

/*
 * Publish a new session in SLOT: a fresh session id, zero counters, the
 * description D. Returns the session id.
 */
uint64_t shmw_start(struct shmw *, uint32_t slot, const struct shmw_desc *d);

/* Rewrite SLOT's description (state, filter, error, ...); counters untouched. */
void shmw_describe(struct shmw *, uint32_t slot, const struct shmw_desc *d);

/* Publish SLOT's counters: one seqlock write, no system call. */
void shmw_publish(struct shmw *, uint32_t slot, const struct shmw_counts *c);

/*
 * End the session in SLOT: final counters C, state STOPPED in both blocks.
 * The slot may be reused SHMW_REUSE_NS after NOW_NS.
 */
void shmw_stop(struct shmw *, uint32_t slot, const struct shmw_counts *c,
    uint64_t now_ns);

/*
 * Give back a slot taken by shmw_alloc() that was never started, or undo
 * nothing if it was: for a failed creation.
 */
void shmw_release(struct shmw *, uint32_t slot);

#endif
