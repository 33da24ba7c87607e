/*
 * sess.c: the table of sessions and their life: create, modify, fail,
 * retry, stop, and publishing their counters into the segment. A filter
 * compiles in the background (compile.c) while the session waits for it.
 * The counting itself belongs to a path (kpath.c, pcap.c); this file never
 * sees a packet.
 */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <net/if.h>

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile.h"
#include "config.h"
#include "iface.h"
#include "log.h"
#include "loop.h"
#include "sess.h"
#include "writer.h"

#define BURST		4096	/* packets per session per loop turn */
#define FOLD_NS		(2000000ull)	/* kernel counts reach the segment */
#define RETRY_MIN_NS	(1000000000ull)		/* a failed session tries */
#define RETRY_MAX_NS	(300 * RETRY_MIN_NS)	/* again after 1 s to 5 min */
#define HEARTBEAT_NS	(LOOP_TICK_MS * 1000000ull)
#define STATS_TICKS	2	/* drop counters every other tick */

/* What a session's compile in flight is for. */
enum sess_op {
	OP_NONE,
	OP_NEW,		/* then the session starts, or is no more */
	OP_MODIFY,	/* then the filter is swapped */
	OP_RETRY	/* then a session in error counts again */
};

struct sess_list sessions = TAILQ_HEAD_INITIALIZER(sessions);
static struct sess_list starting = TAILQ_HEAD_INITIALIZER(starting);
static struct shmw *shm;
static unsigned nsess, nstarting;
static unsigned npending;	/* sessions whose last turn hit its budget */
static TAILQ_HEAD(, sess) polled = TAILQ_HEAD_INITIALIZER(polled);
static unsigned nkernel;	/* sessions counting on the kernel path */

static void sess_poll_tick(void);
static void sess_fold(void);
static void sess_fail(struct sess *, const char *);
static struct periodic polltick = { .period_ns = POLL_NS, .fn = sess_poll_tick };
static struct periodic fold = { .period_ns = FOLD_NS, .fn = sess_fold };

static const char *const mode_words[] = {
	[SESS_AUTO] = "auto",
	[SESS_PCAP] = "pcap",
	[SESS_KERNEL] = "kernel",
};

const char *
sess_mode_word(enum sess_mode m)
{
	return mode_words[m];
}

int
sess_mode_parse(const char *w)
{
	int m;

	for (m = SESS_AUTO; m <= SESS_KERNEL; m++)
		if (strcmp(w, mode_words[m]) == 0)
			return m;
	return -1;
}

const char *
sess_state_word(enum capstats_state st)
{
	return capstats_state_name(st);
}

uint64_t
sess_total_drops(const struct sess *s)
{
	return s->t.drops_base + s->t.drops;
}

uint64_t
sess_total_if_drops(const struct sess *s)
{
	return s->t.if_drops_base + s->t.if_drops;
}

static void sess_tick(uint64_t);
static void sess_run_pending(void);
static bool sess_any_pending(void);
static struct loop_work sess_work = {
	.tick = sess_tick,
	.turn = sess_run_pending,
	.pending = sess_any_pending,
};

int
sess_init(const char *shmname, uint32_t max_sessions, char *err, size_t errlen)
{
	uint32_t slots = max_sessions * 4;

	/* Room for stopped entries to cool down before reuse. */
	if (slots < 1024)
		slots = 1024;
	if ((shm = shmw_create(shmname, cfg.gid, slots, HEARTBEAT_NS,
	    err, errlen)) == NULL)
		return -1;
	cfg.instance = shmw_instance(shm);
	if (shmw_vacated(shm) != NULL)
		log_warnx("%s", shmw_vacated(shm));
	shmw_heartbeat(shm, now_mono());
	loop_register(&sess_work);
	return 0;
}

struct sess *
sess_find(const char *name)
{
	struct sess *s;

	TAILQ_FOREACH(s, &sessions, entry)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

bool
sess_name_taken(const char *name)
{
	struct sess *s;

	TAILQ_FOREACH(s, &starting, entry)
		if (strcmp(s->name, name) == 0)
			return true;
	return sess_find(name) != NULL;
}

static void
sess_desc(const struct sess *s, struct shmw_desc *d)
{
	d->state = s->state;
	d->mode = s->mode;
	d->flags = s->flags;
	d->created_ns = s->created_ns;
	d->modified_ns = s->modified_ns;
	d->name = s->name;
	d->iface = s->iface;
	d->filter = s->filter;
	d->error = s->error;
}

static void
sess_describe(struct sess *s)
{
	struct shmw_desc d;

	sess_desc(s, &d);
	shmw_describe(shm, s->slot, &d);
}

static void
sess_counts(const struct sess *s, struct shmw_counts *c)
{
	c->packets = s->t.packets;
	c->bytes = s->t.bytes;
	c->drops = sess_total_drops(s);
	c->if_drops = sess_total_if_drops(s);
	c->last_packet_ns = s->t.last_packet_ns;
	c->state = s->state;
	c->mode = s->mode;
}

static void
sess_publish(struct sess *s)
{
	struct shmw_counts c;

	sess_counts(s, &c);
	shmw_publish(shm, s->slot, &c);
}

static void
sess_set_pending(struct sess *s, bool pending)
{
	if (s->pending != pending)
		npending += pending ? 1 : -1;
	s->pending = pending;
}

/* Count what S's path has: how many packets, or -1 when S failed. */
static int
sess_collect(struct sess *s, uint32_t events)
{
	char err[256];
	socklen_t len = sizeof(int);
	int n, soerr = 0;

	n = s->path->collect(&s->t, BURST, err, sizeof(err));
	if (n == 0 && (events & (EPOLLERR | EPOLLHUP))) {
		getsockopt(s->t.ev.fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		if (soerr == 0 || soerr == ENETDOWN)
			snprintf(err, sizeof(err), "%s: the interface went down",
			    s->iface);
		else
			snprintf(err, sizeof(err), "%s: capture socket: %s",
			    s->iface, strerror(soerr));
		n = -1;
	}
	if (n < 0) {
		sess_fail(s, err);
		return -1;
	}
	sess_set_pending(s, n >= BURST);
	if (n > 0)
		sess_publish(s);
	return n;
}

static void
sess_polled_list(struct sess *s, bool on)
{
	bool was_empty = TAILQ_EMPTY(&polled);

	if (s->t.polled == on)
		return;
	if (on)
		TAILQ_INSERT_TAIL(&polled, s, poll_entry);
	else
		TAILQ_REMOVE(&polled, s, poll_entry);
	s->t.polled = on;
	s->idle = 0;
	if (TAILQ_EMPTY(&polled) != was_empty)
		loop_every(&polltick, was_empty);
}

/*
 * Stop or start S's wake-ups. Out of epoll, its socket has no waiter for
 * the kernel to call on each packet; an error shows in the tick's read,
 * and a level-triggered fd added back reports at once whatever came in
 * between.
 */
static void
sess_poll(struct sess *s, bool on)
{
	if (on)
		ev_del(&s->t.ev);
	else if (ev_add(&s->t.ev, EPOLLIN) == -1) {
		log_warn("session %s: epoll", s->name);
		return;
	}
	sess_polled_list(s, on);
}

/*
 * Woken for packets. Two wake-ups within one poll interval mean the
 * packets come faster than it: from now on they are read on the tick.
 */
static void
sess_io(struct evsrc *src, uint32_t events)
{
	struct sess *s = (struct sess *)src;
	uint64_t now = now_mono();

	if (sess_collect(s, events) > 0 && !s->t.polled &&
	    now - s->woken_ns < POLL_NS)
		sess_poll(s, true);
	s->woken_ns = now;
}

/* Read every polled session; one that stays empty is woken again. */
static void
sess_poll_tick(void)
{
	struct sess *s, *next;
	int n;

	for (s = TAILQ_FIRST(&polled); s != NULL; s = next) {
		next = TAILQ_NEXT(s, poll_entry);
		if ((n = sess_collect(s, 0)) > 0)
			s->idle = 0;
		else if (n == 0 && ++s->idle >= POLL_IDLE)
			sess_poll(s, false);
	}
}

static bool
sess_any_pending(void)
{
	return npending > 0;
}

/* Publish what the kernel path counted; fail what it lost. */
static void
sess_news(void)
{
	struct tally *t;
	struct sess *s;

	while ((t = kpath_news()) != NULL) {
		s = (struct sess *)t;
		if (t->failed[0] != '\0')
			sess_fail(s, t->failed);
		else
			sess_publish(s);
	}
}

static void
sess_fold(void)
{
	kpath_fold();
	sess_news();
}

/*
 * Each turn: what the kernel path has to tell, and the sessions whose
 * last turn hit the budget, which may have packets epoll cannot see.
 */
static void
sess_run_pending(void)
{
	struct sess *s, *next;

	sess_news();
	if (npending == 0)
		return;
	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->pending)
			sess_collect(s, 0);
	}
}

/*
 * Open the path the session asks for: the kernel's when it can count this
 * filter on this link type, else libpcap's, unless one was asked for.
 * Errors of the interface or permission are the session's, whatever the
 * path.
 */
static enum ctl_status
sess_open_path(struct sess *s, const struct compiled *c, char *err,
    size_t errlen)
{
	char why[sizeof(s->mode_why)];
	enum ctl_status st;

	s->flags = s->want == SESS_AUTO ? 0 : CAPSTATS_F_MODE_ASKED;
	if (s->want != SESS_PCAP) {
		if (!kpath_available(why, sizeof(why))) {
			if (s->want == SESS_KERNEL) {
				snprintf(err, errlen, "kernel path unavailable: "
				    "%s", why);
				return CTL_UNSUPPORTED;
			}
		} else {
			s->path = &kernel_path;
			s->mode = CAPSTATS_MODE_KERNEL;
			st = kernel_path.open(&s->t, c->prog, c->dlt, err, errlen);
			if (st == CTL_OK) {
				snprintf(s->mode_why, sizeof(s->mode_why), "%s",
				    s->want == SESS_KERNEL ? "asked for" :
				    "the default");
				return CTL_OK;
			}
			if (s->want == SESS_KERNEL ||
			    (st != CTL_BADFILTER && st != CTL_UNSUPPORTED))
				return st;
			snprintf(why, sizeof(why), "%s", err);
		}
		s->flags |= CAPSTATS_F_MODE_FALLBACK;
		strlcpy(s->mode_why, "kernel path refused: ", sizeof(s->mode_why));
		strlcat(s->mode_why, why, sizeof(s->mode_why));
	} else
		snprintf(s->mode_why, sizeof(s->mode_why), "asked for");
	s->path = &pcap_path;
	s->mode = CAPSTATS_MODE_PCAP;
	return pcap_path.open(&s->t, c->prog, c->dlt, err, errlen);
}

/* Start the path; on success the session is RUNNING and in the loop. */
static enum ctl_status
sess_open(struct sess *s, const struct compiled *c, char *err, size_t errlen)
{
	enum ctl_status st;

	s->t.ev.fd = -1;
	s->t.ev.fn = sess_io;
	s->t.failed[0] = '\0';
	if ((st = sess_open_path(s, c, err, errlen)) != CTL_OK)
		return st;
	if (s->mode == CAPSTATS_MODE_PCAP &&
	    (s->flags & CAPSTATS_F_MODE_FALLBACK))
		log_info("session %s: counting with libpcap: %s", s->name,
		    s->mode_why);
	if (s->t.ev.fd != -1 && ev_add(&s->t.ev, EPOLLIN) == -1) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		s->path->close(&s->t);
		s->t.ev.fd = -1;
		return CTL_INTERNAL;
	}
	if (s->path == &kernel_path && nkernel++ == 0)
		loop_every(&fold, true);
	s->state = CAPSTATS_RUNNING;
	s->error[0] = '\0';
	s->retry_ns = 0;
	return CTL_OK;
}

/* Close the path, keeping its totals. */
static void
sess_close(struct sess *s)
{
	if (s->state != CAPSTATS_RUNNING)
		return;
	s->path->stats(&s->t);
	ev_del(&s->t.ev);
	s->path->close(&s->t);
	s->t.ev.fd = -1;
	if (s->path == &kernel_path && --nkernel == 0)
		loop_every(&fold, false);
	s->t.drops_base += s->t.drops;
	s->t.if_drops_base += s->t.if_drops;
	s->t.drops = s->t.if_drops = 0;
	sess_set_pending(s, false);
	sess_polled_list(s, false);
}

/*
 * S is in error: try again after a wait that doubles with each failure in
 * a row, from RETRY_MIN_NS to RETRY_MAX_NS. A failure is logged when it
 * differs from the one before.
 */
static void
sess_backoff(struct sess *s, const char *why)
{
	s->state = CAPSTATS_ERROR;
	s->retry_ns = s->retry_ns == 0 ? RETRY_MIN_NS :
	    s->retry_ns >= RETRY_MAX_NS / 2 ? RETRY_MAX_NS : s->retry_ns * 2;
	s->retry_at = now_mono() + s->retry_ns;
	if (strcmp(why, s->error) != 0) {
		log_warnx("session %s: %s; trying again in %llu s", s->name, why,
		    (unsigned long long)(s->retry_ns / 1000000000u));
		strlcpy(s->error, why, sizeof(s->error));
	}
	sess_describe(s);
	sess_publish(s);
}

static void
sess_fail(struct sess *s, const char *why)
{
	sess_close(s);
	s->retry_ns = 0;
	sess_backoff(s, why);
}

/* Tell whoever waits for S's operation how it ended. */
static void
sess_answer(struct sess *s, enum ctl_status st, const char *err)
{
	struct sess_waiter w = s->waiter;

	memset(&s->waiter, 0, sizeof(s->waiter));
	if (w.done != NULL)
		w.done(w.client, st == CTL_OK ? s : NULL, st, err);
}

static void
sess_free(struct sess *s)
{
	free(s->filter);
	free(s->next_filter);
	s->t.ev.fd = -1;
	loop_free_later(s);
}

static void sess_compiled(void *, struct compiled *);

/* Compile FILTER for S in the background, for OP. */
static int
sess_compile(struct sess *s, enum sess_op op, const char *filter, bool dead_ok)
{
	if ((s->job = compile_start(s->iface, filter, dead_ok, sess_compiled,
	    s)) == NULL)
		return -1;
	s->op = op;
	return 0;
}

static struct sess *
sess_alloc(const char *name, const char *iface, enum sess_mode want,
    const char *filter)
{
	struct sess *s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->filter = strdup(filter)) == NULL) {
		free(s);
		return NULL;
	}
	strlcpy(s->name, name, sizeof(s->name));
	strlcpy(s->iface, iface, sizeof(s->iface));
	s->t.name = s->name;
	s->t.iface = s->iface;
	s->t.ev.fd = -1;
	s->path = &pcap_path;
	s->mode = CAPSTATS_MODE_PCAP;
	s->want = want;
	s->created_ns = s->modified_ns = now_real();
	return s;
}

/* Take an entry of the segment for S and list it. */
static enum ctl_status
sess_enter(struct sess *s, char *err, size_t errlen)
{
	struct shmw_desc d;
	int slot;

	if ((slot = shmw_alloc(shm, now_mono())) == -1) {
		snprintf(err, errlen, "no free entry in the segment: stopped "
		    "sessions' entries are reused 2 s after stop");
		return CTL_FULL;
	}
	s->slot = (uint32_t)slot;
	sess_desc(s, &d);
	s->session_id = shmw_start(shm, s->slot, &d);
	sess_publish(s);
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	nsess++;
	log_info("session %s: %s on %s (%s), filter '%s'", s->name,
	    s->state == CAPSTATS_RUNNING ? "counting" : "waiting", s->iface,
	    s->path->name, s->filter);
	return CTL_OK;
}

static enum ctl_status
sess_room(char *err, size_t errlen)
{
	if (nsess + nstarting < cfg.max_sessions)
		return CTL_OK;
	snprintf(err, errlen, "session limit reached: %u sessions (raise it "
	    "with -n)", cfg.max_sessions);
	return CTL_FULL;
}

enum ctl_status
sess_new(const char *name, const char *iface, enum sess_mode want,
    const char *filter, const struct sess_waiter *w, char *err, size_t errlen)
{
	enum ctl_status st;
	struct sess *s;

	if ((st = sess_room(err, errlen)) != CTL_OK)
		return st;
	if (iface == NULL && (iface = iface_default(err, errlen)) == NULL)
		return CTL_BADIFACE;
	if ((s = sess_alloc(name, iface, want, filter)) == NULL ||
	    sess_compile(s, OP_NEW, filter, false) == -1) {
		if (s != NULL)
			sess_free(s);
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	s->waiter = *w;
	TAILQ_INSERT_TAIL(&starting, s, entry);
	nstarting++;
	return CTL_OK;
}

/* A new session's filter compiled, or did not: it counts, or is no more. */
static void
sess_new_compiled(struct sess *s, const struct compiled *c)
{
	char err[512];
	enum ctl_status st = c->status;

	TAILQ_REMOVE(&starting, s, entry);
	nstarting--;
	strlcpy(err, c->err, sizeof(err));
	if (st == CTL_OK && (st = sess_open(s, c, err, sizeof(err))) == CTL_OK &&
	    (st = sess_enter(s, err, sizeof(err))) != CTL_OK)
		sess_close(s);
	if (st != CTL_OK) {
		sess_answer(s, st, err);
		sess_free(s);
		return;
	}
	sess_answer(s, CTL_OK, "");
}

static void
sess_retry(struct sess *s)
{
	if (s->job != NULL)
		return;
	log_debug("session %s: trying again", s->name);
	if (sess_compile(s, OP_RETRY, s->filter, false) == -1)
		sess_backoff(s, "out of memory");
}

enum ctl_status
sess_restore(const char *name, const char *iface, enum sess_mode want,
    const char *filter, char *err, size_t errlen)
{
	enum ctl_status st;
	struct sess *s;

	if ((st = sess_room(err, errlen)) != CTL_OK)
		return st;
	if ((s = sess_alloc(name, iface, want, filter)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	s->state = CAPSTATS_ERROR;
	strlcpy(s->error, "starting: the filter is compiling", sizeof(s->error));
	if ((st = sess_enter(s, err, errlen)) != CTL_OK) {
		sess_free(s);
		return st;
	}
	sess_retry(s);
	return CTL_OK;
}

static void
sess_retry_compiled(struct sess *s, const struct compiled *c)
{
	char err[512];
	enum ctl_status st = c->status;

	strlcpy(err, c->err, sizeof(err));
	if (st == CTL_OK)
		st = sess_open(s, c, err, sizeof(err));
	if (st != CTL_OK) {
		sess_backoff(s, err);
		return;
	}
	log_info("session %s: counting on %s (%s)", s->name, s->iface,
	    s->path->name);
	sess_describe(s);
	sess_publish(s);
}

/*
 * A new filter the kernel path cannot count: move the session to libpcap,
 * counters kept. When that fails too, the session is in error and tries
 * again with the filter it had.
 */
static enum ctl_status
sess_reopen(struct sess *s, const struct compiled *c, char *err,
    size_t errlen)
{
	enum ctl_status st;

	sess_close(s);
	if ((st = sess_open(s, c, err, errlen)) != CTL_OK)
		sess_fail(s, err);
	return st;
}

static enum ctl_status
sess_refilter(struct sess *s, const struct compiled *c, char *err,
    size_t errlen)
{
	enum ctl_status st;

	st = s->path->refilter(&s->t, c->prog, c->dlt, err, errlen);
	if ((st == CTL_BADFILTER || st == CTL_UNSUPPORTED) &&
	    s->path == &kernel_path && s->want == SESS_AUTO)
		st = sess_reopen(s, c, err, errlen);
	return st;
}

enum ctl_status
sess_modify(struct sess *s, const char *filter, const struct sess_waiter *w,
    char *err, size_t errlen)
{
	if (s->op == OP_MODIFY) {
		snprintf(err, errlen, "session %s: a modify is under way",
		    s->name);
		return CTL_BUSY;
	}
	if ((s->next_filter = strdup(filter)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if (s->job != NULL) {		/* a retry: this filter instead */
		compile_cancel(s->job);
		s->job = NULL;
		s->op = OP_NONE;
	}
	if (sess_compile(s, OP_MODIFY, filter,
	    s->state != CAPSTATS_RUNNING) == -1) {
		free(s->next_filter);
		s->next_filter = NULL;
		if (s->state == CAPSTATS_ERROR)
			sess_retry(s);
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	s->waiter = *w;
	return CTL_OK;
}

static void
sess_modify_compiled(struct sess *s, const struct compiled *c)
{
	char err[512], *filter = s->next_filter;
	enum ctl_status st = c->status;

	s->next_filter = NULL;
	strlcpy(err, c->err, sizeof(err));
	if (st == CTL_OK && s->state == CAPSTATS_RUNNING)
		st = sess_refilter(s, c, err, sizeof(err));
	if (st != CTL_OK) {
		free(filter);
		if (s->state == CAPSTATS_ERROR)
			sess_retry(s);
		sess_answer(s, st, err);
		return;
	}
	free(s->filter);
	s->filter = filter;
	s->modified_ns = now_real();
	if (s->state == CAPSTATS_ERROR) {	/* the new filter, at once */
		s->retry_ns = 0;
		sess_retry(s);
	}
	sess_describe(s);
	sess_publish(s);
	log_info("session %s: filter now '%s', %s", s->name, s->filter,
	    s->mode_why);
	sess_answer(s, CTL_OK, "");
}

static void
sess_compiled(void *arg, struct compiled *c)
{
	struct sess *s = arg;
	enum sess_op op = s->op;

	s->job = NULL;
	s->op = OP_NONE;
	switch (op) {
	case OP_NEW:
		sess_new_compiled(s, c);
		break;
	case OP_MODIFY:
		sess_modify_compiled(s, c);
		break;
	case OP_RETRY:
		sess_retry_compiled(s, c);
		break;
	case OP_NONE:
		break;
	}
}

/* End S's compile, if any; whoever waits for it hears that S stopped. */
static void
sess_abandon(struct sess *s, const char *why)
{
	if (s->job != NULL)
		compile_cancel(s->job);
	s->job = NULL;
	s->op = OP_NONE;
	sess_answer(s, CTL_NOSESSION, why);
}

void
sess_stop(struct sess *s)
{
	struct shmw_counts c;
	char why[128];

	snprintf(why, sizeof(why), "session %s was stopped", s->name);
	sess_abandon(s, why);
	sess_close(s);
	s->state = CAPSTATS_STOPPED;
	sess_counts(s, &c);
	shmw_stop(shm, s->slot, &c, now_mono());
	TAILQ_REMOVE(&sessions, s, entry);
	nsess--;
	log_info("session %s: stopped at %llu packets, %llu bytes", s->name,
	    (unsigned long long)s->t.packets, (unsigned long long)s->t.bytes);
	sess_free(s);
}

/* The heartbeat, retries when due, and drop counters every STATS_TICKS. */
static void
sess_tick(uint64_t now)
{
	static unsigned ticks;
	uint64_t packets, drops, if_drops;
	struct sess *s, *next;
	bool stats = ++ticks % STATS_TICKS == 0;

	shmw_heartbeat(shm, now);
	for (s = TAILQ_FIRST(&sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == CAPSTATS_ERROR && s->job == NULL &&
		    now >= s->retry_at)
			sess_retry(s);
		else if (s->state == CAPSTATS_RUNNING && stats) {
			packets = s->t.packets;
			drops = s->t.drops;
			if_drops = s->t.if_drops;
			s->path->stats(&s->t);
			if (packets != s->t.packets || drops != s->t.drops ||
			    if_drops != s->t.if_drops)
				sess_publish(s);
		}
	}
}

void
sess_shutdown(void)
{
	struct sess *s;

	kpath_shutdown();
	while ((s = TAILQ_FIRST(&starting)) != NULL) {
		sess_abandon(s, "the daemon is shutting down");
		TAILQ_REMOVE(&starting, s, entry);
		sess_free(s);
	}
	while ((s = TAILQ_FIRST(&sessions)) != NULL) {
		sess_abandon(s, "the daemon is shutting down");
		sess_close(s);
		TAILQ_REMOVE(&sessions, s, entry);
		sess_free(s);
	}
	if (shm != NULL)
		shmw_destroy(shm);
	shm = NULL;
}
