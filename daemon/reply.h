/*
 * reply.h: building the reply to one request, as protocol lines (see
 * proto.h), and finishing it later when a handler must wait. The control
 * socket owns each reply and sends it; handlers only write into it.
 */
#ifndef CAPSTATS_REPLY_H
#define CAPSTATS_REPLY_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct reply {
	char			*buf;
	size_t			 len, cap;
	bool			 failed;	/* out of memory, or too large */
	bool			 later;		/* the handler answers later */
	uint64_t		 id;		/* never reused: for reply_resume() */
	void			(*answered)(struct reply *);
	LIST_ENTRY(reply)	 entry;
};

/*
 * The owner of R opens it before the first request and closes it when it
 * goes, which frees its buffer. ANSWERED is called when an answer that
 * came later is complete (reply_resumed).
 */
void reply_open(struct reply *r, void (*answered)(struct reply *));
void reply_close(struct reply *r);

void rep_line(struct reply *, const char *word);	/* a new line: WORD, then fields */
void rep_row(struct reply *);				/* rep_line(r, "row") */
void rep_str(struct reply *, const char *key, const char *val);
void rep_u64(struct reply *, const char *key, uint64_t val);
void rep_eol(struct reply *);	/* end the line in progress */
void rep_ok(struct reply *);
enum ctl_status rep_err(struct reply *, enum ctl_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A handler that set r->later keeps r->id, and finishes later:
 * reply_resume() gives the reply, or NULL when its owner has gone;
 * reply_resumed() hands it back to the owner.
 */
struct reply *reply_resume(uint64_t id);
void reply_resumed(uint64_t id);

#endif
