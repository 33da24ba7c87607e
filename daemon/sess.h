/*
 * sess.h: the sessions: their table, their life (new, modify, fail,
 * retry, stop) and the publishing of their counters into the segment.
 * The counting itself belongs to a path (path.h).
 */
#ifndef CAPSTATS_SESS_H
#define CAPSTATS_SESS_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capstats.h"
#include "path.h"

/* The counting path a session asks for. */
enum sess_mode {
	SESS_AUTO,	/* the kernel's when the filter translates, else libpcap's */
	SESS_PCAP,
	SESS_KERNEL
};
const char *sess_mode_word(enum sess_mode);
int sess_mode_parse(const char *);	/* -1 when unknown */

struct sess;
/*
 * Who waits for a new or modify that was accepted: DONE is called once,
 * from the loop, when it ends; S is NULL when there is no session.
 */
typedef void sess_done_fn(uint64_t client, struct sess *s, enum ctl_status,
    const char *err);
struct sess_waiter {
	sess_done_fn	*done;
	uint64_t	 client;
};

struct sess {
	struct tally		 t;		/* first: its event source is the session's */
	TAILQ_ENTRY(sess)	 entry;
	char			 name[CAPSTATS_NAME_MAX + 1];
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	char			*filter;
	char			 error[256];
	uint32_t		 slot;
	uint64_t		 session_id;
	enum capstats_state	 state;
	enum capstats_mode	 mode;		/* the path counting now */
	enum sess_mode		 want;		/* the path asked for */
	uint32_t		 flags;		/* CAPSTATS_F_MODE_* */
	char			 mode_why[200];	/* why this path */
	const struct path_ops	*path;
	bool			 pending;	/* the last collect hit its budget */
	unsigned		 idle;		/* empty reads on the tick in a row */
	TAILQ_ENTRY(sess)	 poll_entry;
	uint64_t		 woken_ns;	/* monotonic: the last wake-up */
	uint64_t		 created_ns, modified_ns;	/* realtime */
	uint64_t		 retry_at;	/* monotonic: next reopen attempt */
	uint64_t		 retry_ns;	/* the wait after the next failure */
	struct compile_job	*job;		/* a compile in flight for S */
	int			 op;		/* what it is for (sess.c) */
	char			*next_filter;	/* modify: the filter compiling */
	struct sess_waiter	 waiter;	/* who waits for the op's end */
};

TAILQ_HEAD(sess_list, sess);
extern struct sess_list sessions;

/* Create the segment for SLOTS sessions and join the loop. */
int sess_init(const char *shmname, uint32_t slots, char *err, size_t errlen);
struct sess *sess_find(const char *name);	/* a session that started */
bool sess_name_taken(const char *name);		/* ... or is starting */
/*
 * Start a session: its filter compiles in the background, then the
 * session counts and DONE hears of it. CTL_OK when under way, or an error
 * now, when DONE is not called.
 */
enum ctl_status sess_new(const char *name, const char *iface,
    enum sess_mode want, const char *filter, const struct sess_waiter *,
    char *err, size_t errlen);
/* A session from the state file: listed at once, counting once it can. */
enum ctl_status sess_restore(const char *name, const char *iface,
    enum sess_mode want, const char *filter, char *err, size_t errlen);
/* Swap the filter once the new one compiled; as sess_new for DONE. */
enum ctl_status sess_modify(struct sess *, const char *filter,
    const struct sess_waiter *, char *err, size_t errlen);
void sess_stop(struct sess *);
void sess_shutdown(void);
uint64_t sess_total_drops(const struct sess *);
uint64_t sess_total_if_drops(const struct sess *);
const char *sess_state_word(enum capstats_state);

#endif
