/*
 * loop.h: the daemon's one event loop. Modules above it add their file
 * descriptors as event sources, and register the work they do on the
 * loop's 50 ms tick, at every turn, or every few milliseconds; the loop
 * names none of them. Nothing run from the loop may block or sleep.
 */
#ifndef CAPSTATS_LOOP_H
#define CAPSTATS_LOOP_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"

#define LOOP_TICK_MS	50	/* the heartbeat; readers see it at least every 100 ms */

/* An event source: called with the epoll events that fired. */
struct evsrc {
	int	  fd;
	void	(*fn)(struct evsrc *, uint32_t events);
};

int ev_add(struct evsrc *, uint32_t events);
int ev_mod(struct evsrc *, uint32_t events);
void ev_del(struct evsrc *);

/*
 * Free P when the loop's turn is over. An object with an event source
 * that ends during a turn sets the source's fd to -1 and goes here: a
 * later event of the same batch may still name it, and is then skipped.
 */
void loop_free_later(void *p);

/*
 * A module's share of the loop, registered once: TICK runs on every tick
 * (monotonic ns), TURN at the start of every turn, and while PENDING says
 * there is more to do the loop does not wait. Any of them may be NULL.
 * Modules run in the order they registered.
 */
struct loop_work {
	void			 (*tick)(uint64_t now);
	void			 (*turn)(void);
	bool			 (*pending)(void);
	SLIST_ENTRY(loop_work)	 entry;
};
void loop_register(struct loop_work *);

/*
 * Work due every PERIOD_NS while it is on, run from the loop's own
 * timeout: no timer fd to wake and read. A late run does not catch up.
 */
struct periodic {
	uint64_t		 period_ns;
	void			 (*fn)(void);	/* may turn its periodic off */
	uint64_t		 next_ns;	/* monotonic; 0: off */
	bool			 listed;
	SLIST_ENTRY(periodic)	 entry;
};
void loop_every(struct periodic *, bool on);

int loop_init(char *err, size_t errlen);
void loop_run(void);	/* until SIGTERM, SIGINT or SIGHUP */
void loop_end(void);	/* free what the last turn left */

#endif
