/*
 * path.h: the two counting paths, libpcap's (pcap.c) and the kernel's
 * (kpath.c), and the tally each keeps for a session. A session embeds its
 * tally and reads it; a path never calls up into sessions: what happened
 * reaches them through return values and kpath_news().
 */
#ifndef CAPSTATS_PATH_H
#define CAPSTATS_PATH_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "proto.h"

struct bpf_program;

/*
 * A session whose packets come faster than one per POLL_NS is read every
 * POLL_NS instead of woken per packet, until POLL_IDLE reads in a row find
 * nothing. An empty read costs a system call, a wake-up several.
 */
#define POLL_NS		(1000000ull)
#define POLL_IDLE	8

/* What a path counts for one session. */
struct tally {
	struct evsrc		 ev;		/* the path's selectable fd, or -1 */
	const char		*name;		/* the session's, for messages */
	const char		*iface;
	void			*state;		/* the path's own */
	bool			 polled;	/* out of epoll, read on the tick */
	/* Totals over every open of the path. */
	uint64_t		 packets, bytes, last_packet_ns;
	uint64_t		 drops, if_drops;		/* current open */
	uint64_t		 drops_base, if_drops_base;	/* earlier opens */
	/* Kernel path: on the news since its counts moved or its socket failed. */
	bool			 in_news;
	char			 failed[128];	/* why, when it failed */
	TAILQ_ENTRY(tally)	 news;
};

struct path_ops {
	const char	*name;
	/* Start counting PROG, compiled for link type DLT, on T->iface. */
	enum ctl_status	(*open)(struct tally *, const struct bpf_program *prog,
			    int dlt, char *err, size_t errlen);
	/* Count PROG from now on; counters go on. */
	enum ctl_status	(*refilter)(struct tally *,
			    const struct bpf_program *prog, int dlt, char *err,
			    size_t errlen);
	/* Count what arrived, at most BUDGET packets; -1 with err on failure. */
	int		(*collect)(struct tally *, int budget, char *err,
			    size_t errlen);
	/* Refresh T->drops and T->if_drops. */
	void		(*stats)(struct tally *);
	void		(*close)(struct tally *);
};

extern const struct path_ops pcap_path;
extern const struct path_ops kernel_path;

/* The kernel path's shared state. */
bool kpath_available(char *why, size_t whylen);
void kpath_fold(void);		/* fetch the kernel's counters into the tallies */
/* A tally whose counts moved on a fold or whose socket failed, or NULL. */
struct tally *kpath_news(void);
void kpath_shutdown(void);	/* stop counting on every interface at once */

#endif
