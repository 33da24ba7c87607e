/*
 * loop.c: the one event loop over signals (a signalfd), the heartbeat
 * timer and every source the modules add. It knows the modules only by
 * what they registered. Nothing here blocks but epoll itself.
 */
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

#define MAX_EVENTS	64

static int epfd = -1;
static volatile int quit;
static struct evsrc sigsrc = { .fd = -1 }, timersrc = { .fd = -1 };
static SLIST_HEAD(, loop_work) works = SLIST_HEAD_INITIALIZER(works);
static SLIST_HEAD(, periodic) periodics = SLIST_HEAD_INITIALIZER(periodics);

/* What ended during this turn of the loop, freed when the turn is over. */
static void **graveyard;
static size_t ngrave, gravecap;

int
ev_add(struct evsrc *src, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = src };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, src->fd, &e);
}

int
ev_mod(struct evsrc *src, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = src };

	return epoll_ctl(epfd, EPOLL_CTL_MOD, src->fd, &e);
}

void
ev_del(struct evsrc *src)
{
	if (src->fd != -1)
		epoll_ctl(epfd, EPOLL_CTL_DEL, src->fd, NULL);
}

void
loop_free_later(void *p)
{
	void **g;
	size_t cap;

	if (ngrave == gravecap) {
		cap = gravecap ? gravecap * 2 : 64;
		if ((g = reallocarray(graveyard, cap, sizeof(*g))) == NULL)
			fatal("loop_free_later");
		graveyard = g;
		gravecap = cap;
	}
	graveyard[ngrave++] = p;
}

static void
loop_bury(void)
{
	while (ngrave > 0)
		free(graveyard[--ngrave]);
}

/* Modules run in the order they registered: the list's tail is the last. */
void
loop_register(struct loop_work *w)
{
	struct loop_work *last, *next;

	if (SLIST_EMPTY(&works)) {
		SLIST_INSERT_HEAD(&works, w, entry);
		return;
	}
	for (last = SLIST_FIRST(&works); (next = SLIST_NEXT(last, entry)) != NULL;
	    last = next)
		;
	SLIST_INSERT_AFTER(last, w, entry);
}

void
loop_every(struct periodic *p, bool on)
{
	if (!p->listed) {
		SLIST_INSERT_HEAD(&periodics, p, entry);
		p->listed = true;
	}
	p->next_ns = on ? now_mono() + p->period_ns : 0;
}

/* Run what is due at NOW; nanoseconds until the next, or -1 for none. */
static int64_t
periodic_run(uint64_t now)
{
	struct periodic *p;
	int64_t wait = -1;

	SLIST_FOREACH(p, &periodics, entry) {
		if (p->next_ns != 0 && p->next_ns <= now) {
			p->next_ns += p->period_ns;
			if (p->next_ns <= now)	/* late: no catching up */
				p->next_ns = now + p->period_ns;
			p->fn();
		}
		if (p->next_ns != 0 && (wait < 0 || (int64_t)(p->next_ns - now) < wait))
			wait = (int64_t)(p->next_ns - now);
	}
	return wait;
}

static void
on_signal(struct evsrc *src, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(src->fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("signal %u: shutting down", si.ssi_signo);
		quit = 1;
	}
}

static void
on_tick(struct evsrc *src, uint32_t events)
{
	uint64_t expirations, now;
	struct loop_work *w;

	(void)events;
	if (read(src->fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	now = now_mono();
	SLIST_FOREACH(w, &works, entry)
		if (w->tick != NULL)
			w->tick(now);
	log_tick(now);
}

static void
loop_turn(void)
{
	struct loop_work *w;

	SLIST_FOREACH(w, &works, entry)
		if (w->turn != NULL)
			w->turn();
}

/* Has a module more to do at once? */
static bool
loop_pending(void)
{
	struct loop_work *w;

	SLIST_FOREACH(w, &works, entry)
		if (w->pending != NULL && w->pending())
			return true;
	return false;
}

/*
 * epoll_wait for at most NS nanoseconds (-1: no limit). Without
 * epoll_pwait2 (before Linux 5.11, or filtered out), whole milliseconds.
 */
static int
loop_wait(struct epoll_event *events, int64_t ns)
{
	static bool ms_only;
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	int n;

	if (!ms_only) {
		n = epoll_pwait2(epfd, events, MAX_EVENTS, ns < 0 ? NULL : &ts,
		    NULL);
		if (n != -1 || (errno != ENOSYS && errno != EPERM))
			return n;
		ms_only = true;
		log_debug("epoll_pwait2: %s; waiting in whole milliseconds",
		    strerror(errno));
	}
	return epoll_wait(epfd, events, MAX_EVENTS,
	    ns < 0 ? -1 : (int)((ns + 999999) / 1000000));
}

int
loop_init(char *err, size_t errlen)
{
	struct itimerspec its = {
		.it_interval = { 0, LOOP_TICK_MS * 1000000L },
		.it_value = { 0, LOOP_TICK_MS * 1000000L },
	};
	sigset_t mask;

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		goto fail;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) == -1)
		goto fail;
	signal(SIGPIPE, SIG_IGN);
	sigsrc.fn = on_signal;
	if ((sigsrc.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
	    ev_add(&sigsrc, EPOLLIN) == -1)
		goto fail;
	timersrc.fn = on_tick;
	if ((timersrc.fd = timerfd_create(CLOCK_MONOTONIC,
	    TFD_NONBLOCK | TFD_CLOEXEC)) == -1 ||
	    timerfd_settime(timersrc.fd, 0, &its, NULL) == -1 ||
	    ev_add(&timersrc, EPOLLIN) == -1)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "event loop: %s", strerror(errno));
	return -1;
}

void
loop_run(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct evsrc *src;
	int64_t wait;
	int i, n;

	while (!quit) {
		loop_turn();
		wait = periodic_run(now_mono());
		if (loop_pending())
			wait = 0;
		if ((n = loop_wait(events, wait)) == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait");
		}
		for (i = 0; i < n; i++) {
			src = events[i].data.ptr;
			if (src->fd != -1)
				src->fn(src, events[i].events);
		}
		loop_bury();
	}
}

void
loop_end(void)
{
	loop_bury();
	free(graveyard);
	graveyard = NULL;
	gravecap = 0;
}
