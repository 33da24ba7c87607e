/*
 * capstats.h: the public interface to the capstats counter segment.
 * A reader maps /dev/shm/capstats read-only and copies consistent snapshots
 * of a session's counters without locks and without talking to the daemon.
 * Nothing here writes to the segment, blocks for long, or prints.
 */
#ifndef CAPSTATS_H
#define CAPSTATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAPSTATS_SHM_DEFAULT	"capstats"	/* /dev/shm/capstats */
#define CAPSTATS_NAME_MAX	63	/* session name, without the NUL */
#define CAPSTATS_IFACE_MAX	15	/* IFNAMSIZ - 1 */
#define CAPSTATS_SHM_FILTER_MAX	255	/* filter text kept in the segment */
#define CAPSTATS_SHM_ERROR_MAX	95	/* error text kept in the segment */
#define CAPSTATS_ERRBUF_SIZE	256

/* Session states, as stored in the segment. */
enum capstats_state {
	CAPSTATS_FREE = 0,	/* never used */
	CAPSTATS_RUNNING = 1,	/* counting */
	CAPSTATS_ERROR = 2,	/* not counting now (interface gone, ...); counters kept */
	CAPSTATS_STOPPED = 3	/* ended; final counters kept until the entry is reused */
};

/* Counting paths. */
enum capstats_mode {
	CAPSTATS_MODE_PCAP = 0,
	CAPSTATS_MODE_KERNEL = 1
};

/* Results; every function returning int returns one of these. */
enum capstats_result {
	CAPSTATS_OK = 0,
	CAPSTATS_E_NOENT = -1,		/* no segment: daemon not running */
	CAPSTATS_E_PERM = -2,		/* segment exists but may not be read */
	CAPSTATS_E_INVALID = -3,	/* not a capstats segment, or a hostile one */
	CAPSTATS_E_VERSION = -4,	/* incompatible ABI major version */
	CAPSTATS_E_NOSESSION = -5,	/* no running session of that name */
	CAPSTATS_E_GONE = -6,		/* the entry now belongs to another session */
	CAPSTATS_E_BUSY = -7,		/* no stable read within the retry budget */
	CAPSTATS_E_RESTARTED = -8,	/* the daemon restarted or stopped: reopen */
	CAPSTATS_E_STALE = -9,		/* the writer's heartbeat stopped */
	CAPSTATS_E_SYS = -10		/* a system call failed; see capstats_errmsg() */
};

/* A reference to one session: the slot and the session's generation. */
struct capstats_ref {
	uint32_t slot;
	uint64_t session_id;	/* unique within a daemon instance, never 0 */
};

/* A consistent copy of one session's counter block. */
struct capstats_snapshot {
	uint64_t session_id;
	uint64_t packets;
	uint64_t bytes;		/* sum of wire lengths */
	uint64_t drops;		/* dropped by the kernel for this capture */
	uint64_t if_drops;	/* dropped by the interface */
	uint64_t last_packet_ns;	/* CLOCK_REALTIME of the last counted packet; 0 if none */
	uint64_t update_ns;	/* CLOCK_MONOTONIC of the last publish */
	uint32_t state;		/* enum capstats_state */
	uint32_t mode;		/* enum capstats_mode */
};

/* A consistent copy of one session's description. */
struct capstats_info {
	uint64_t session_id;
	uint32_t slot;
	uint32_t state;
	uint32_t mode;
	uint32_t flags;		/* CAPSTATS_F_* */
	uint64_t created_ns;	/* CLOCK_REALTIME */
	uint64_t modified_ns;	/* CLOCK_REALTIME of the last filter change */
	uint64_t config_gen;	/* bumped at every modify */
	char name[CAPSTATS_NAME_MAX + 1];
	char iface[CAPSTATS_IFACE_MAX + 1];
	char filter[CAPSTATS_SHM_FILTER_MAX + 1];
	char error[CAPSTATS_SHM_ERROR_MAX + 1];
};

#define CAPSTATS_F_FILTER_TRUNCATED	0x1	/* the full filter is only known to the daemon */
#define CAPSTATS_F_MODE_ASKED		0x2	/* the counting path was asked for with `mode` */
#define CAPSTATS_F_MODE_FALLBACK	0x4	/* the kernel path was refused; libpcap counts */

/* What the header says about the writer. */
struct capstats_daemon {
	uint64_t instance_id;	/* changes at every daemon start */
	uint64_t start_realtime_ns;
	uint32_t pid;
	uint32_t state;		/* CAPSTATS_SEG_* */
	uint32_t slot_count;
	uint32_t active_count;
	uint64_t heartbeat_ns;	/* CLOCK_MONOTONIC */
	uint64_t heartbeat_count;
	uint64_t heartbeat_interval_ns;
	uint64_t dir_seq;	/* changes whenever a session is created, modified or stopped */
};

enum capstats_seg_state {
	CAPSTATS_SEG_INIT = 0,
	CAPSTATS_SEG_READY = 1,
	CAPSTATS_SEG_CLOSED = 2,	/* the daemon exited cleanly */
	CAPSTATS_SEG_SUPERSEDED = 3	/* a newer daemon replaced this segment */
};

struct capstats;

/*
 * Map the segment NAME (as given to shm_open, e.g. "capstats"; NULL for the
 * default or $CAPSTATS_SHM). Checks ownership, mode, size, magic, byte order
 * and version before trusting anything. On failure returns NULL, stores a
 * CAPSTATS_E_* code in *result if it is not NULL, and a message in errbuf.
 */
struct capstats *capstats_open(const char *name, int *result,
    char errbuf[CAPSTATS_ERRBUF_SIZE]);
void capstats_close(struct capstats *);

/* The message of the last failure on this handle. */
const char *capstats_errmsg(const struct capstats *);
/* A fixed text for a CAPSTATS_E_* code. */
const char *capstats_strerror(int result);
/*
 * The word for a session state, as capstats and other readers print it:
 * "free", "running", "error" or "stopped"; "unknown" for any other value.
 */
const char *capstats_state_name(enum capstats_state);

/* Copy the header's view of the daemon. */
int capstats_daemon(struct capstats *, struct capstats_daemon *);

/*
 * The staleness rule of capstats-shm(7): the daemon is not responding once
 * its heartbeat is older than CAPSTATS_STALE_BEATS heartbeat intervals, and
 * never sooner than CAPSTATS_STALE_MIN_NS (a busy host stalls for a moment).
 * A stale daemon may come back: stay attached and keep checking.
 */
#define CAPSTATS_STALE_BEATS	3
#define CAPSTATS_STALE_MIN_NS	1000000000ull

/*
 * Is the mapping still the live one? CAPSTATS_E_RESTARTED when the daemon
 * closed or superseded it, or the name now points to another file;
 * CAPSTATS_E_STALE when the heartbeat is older than stale_ns (0: no limit).
 * A heartbeat newer than the caller's clock has age 0.
 */
int capstats_check(struct capstats *, uint64_t stale_ns);

/* Find the running (or failed) session NAME: a scan of the table. */
int capstats_find(struct capstats *, const char *name, struct capstats_ref *);

/*
 * Iterate over the sessions that are running or failed: start with
 * ref->slot = UINT32_MAX; each call fills ref and info with the next one and
 * returns CAPSTATS_OK, or CAPSTATS_E_NOSESSION at the end.
 */
int capstats_next(struct capstats *, struct capstats_ref *, struct capstats_info *);

/*
 * Read a consistent snapshot of REF's counters. CAPSTATS_E_GONE when the
 * slot no longer holds that session (it was stopped and reused);
 * a stopped session still reads, with state CAPSTATS_STOPPED.
 */
int capstats_read(struct capstats *, const struct capstats_ref *,
    struct capstats_snapshot *);

/* Read a consistent copy of REF's description. */
int capstats_info(struct capstats *, const struct capstats_ref *,
    struct capstats_info *);

#ifdef __cplusplus
}
#endif

#endif
