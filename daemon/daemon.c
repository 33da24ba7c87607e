/*
 * daemon.c: start-up, detaching, the pidfile and the one event loop over
 * signals, the heartbeat timer, the control socket and every session.
 * Nothing in the loop blocks or sleeps; signal handling is a signalfd.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libutil.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "writer.h"

#define TICK_MS		50	/* heartbeat; readers see it at least every 100 ms */
#define STATS_TICKS	2	/* drop counters every 100 ms */
#define MAX_EVENTS	64

struct config cfg;

#define FOLD_MS		2	/* the kernel path's counters reach the segment */

static int epfd = -1;
static volatile int quit;
static struct evsrc sigsrc, timersrc;
static unsigned ticks;

/* What ended during this turn of the loop, freed when the turn is over. */
static void **graveyard;
static size_t ngrave, gravecap;

uint64_t
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

/*
 * An object that ends while the loop dispatches a batch of events may
 * still be named by a later event of that batch: it is freed only once the
 * batch is over, and its source, whose fd is -1 by then, is skipped.
 */
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
on_timer(struct evsrc *src, uint32_t events)
{
	uint64_t expirations, now;

	(void)events;
	if (read(src->fd, &expirations, sizeof(expirations)) != sizeof(expirations))
		return;
	now = now_mono();
	ticks++;
	compile_tick(now);
	sess_tick(now, ticks % STATS_TICKS == 0);
	ctl_tick(now);
	log_tick(now);
}

/*
 * Work due every few milliseconds runs from the loop's own timeout rather
 * than a timer fd, which would cost a wake-up and a read each period.
 */
struct periodic {
	uint64_t	  period_ns;
	uint64_t	  next_ns;	/* monotonic; 0: off */
	void		(*fn)(void);
};

static struct periodic fold = { FOLD_MS * 1000000ull, 0, kpath_fold };
static struct periodic polltick = { POLL_NS, 0, sess_poll_tick };
static struct periodic *const periodics[] = { &fold, &polltick };

static void
periodic_set(struct periodic *p, bool on)
{
	p->next_ns = on ? now_mono() + p->period_ns : 0;
}

void
fold_timer(bool on)
{
	periodic_set(&fold, on);
}

void
poll_timer(bool on)
{
	periodic_set(&polltick, on);
}

/* Run what is due at NOW; nanoseconds until the next, or -1 for none. */
static int64_t
periodic_run(uint64_t now)
{
	struct periodic *p;
	int64_t wait = -1;
	size_t i;

	for (i = 0; i < sizeof(periodics) / sizeof(periodics[0]); i++) {
		p = periodics[i];
		if (p->next_ns != 0 && p->next_ns <= now) {
			p->next_ns += p->period_ns;
			if (p->next_ns <= now)	/* late: no catching up */
				p->next_ns = now + p->period_ns;
			p->fn();	/* may turn P off */
		}
		if (p->next_ns != 0 && (wait < 0 || (int64_t)(p->next_ns - now) < wait))
			wait = (int64_t)(p->next_ns - now);
	}
	return wait;
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

static int
setup_loop(char *err, size_t errlen)
{
	struct itimerspec its = {
		.it_interval = { 0, TICK_MS * 1000000L },
		.it_value = { 0, TICK_MS * 1000000L },
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
	timersrc.fn = on_timer;
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

static void
loop(void)
{
	struct epoll_event events[MAX_EVENTS];
	struct evsrc *src;
	int64_t wait;
	int i, n;

	while (!quit) {
		compile_run_queue();
		wait = periodic_run(now_mono());
		if (sess_any_pending() || ctl_any_pending())
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
		sess_run_pending();
		ctl_run_pending();
		loop_bury();
	}
}

static int
resolve_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group *gr;
	char *end;
	unsigned long v;

	if ((gr = getgrnam(name)) != NULL) {
		*gid = gr->gr_gid;
		return 0;
	}
	errno = 0;
	v = strtoul(name, &end, 10);
	if (*name != '\0' && *end == '\0' && errno == 0 && v < UINT_MAX) {
		*gid = (gid_t)v;
		return 0;
	}
	snprintf(err, errlen, "-g %s: no such group", name);
	return -1;
}

/*
 * Detach, but keep the caller's stderr until start-up is done, so every
 * start-up error reaches the person who ran `capstats -d`. The parent
 * relays what the child writes; a NUL byte from the child means it is up.
 */
static void
detach(void)
{
	int p[2], status;
	char buf[512], *nul;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], buf, sizeof(buf))) > 0) {
			nul = memchr(buf, '\0', (size_t)n);
			if (write(STDERR_FILENO, buf, nul ? (size_t)(nul - buf) :
			    (size_t)n) == -1 || nul != NULL)
				_exit(nul != NULL ? 0 : 1);
		}
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
		_exit(1);
	}
	close(p[0]);
	if (setsid() == -1)
		fatal("setsid");
	if (dup2(p[1], STDERR_FILENO) == -1)
		fatal("dup2");
	close(p[1]);
}

static void
detached(void)
{
	int fd;

	log_to_syslog();
	if (write(STDERR_FILENO, "", 1) == -1)
		log_warn("start-up pipe");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (chdir("/") == -1)
		log_warn("chdir /");
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * The segment's name, less its optional leading '/', also names the
 * pidfile and the state file: it must be one path component, or they
 * would land outside their directories.
 */
static bool
shm_name_ok(const char *name)
{
	if (name[0] == '/')
		name++;
	return name[0] != '\0' && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int
daemon_main(const struct options *o)
{
	char err[512], pidpath[PATH_MAX], statepath[PATH_MAX];
	struct pidfh *pfh;
	pid_t other;

	log_init(true, o->debug);
	if (pcaplib_load(err, sizeof(err)) == -1)
		fatalx("%s", err);
	cfg.default_iface = o->iface;
	cfg.max_sessions = o->max_sessions;
	cfg.buffer_kb = o->buffer_kb;
	if (o->group != NULL) {
		if (resolve_group(o->group, &cfg.gid, err, sizeof(err)) == -1)
			fatalx("%s", err);
		cfg.has_group = true;
		cfg.group_name = o->group;
	}
	umask(077);
	raise_fd_limit();

	if (!shm_name_ok(o->shm))
		fatalx("-m %s: not a segment name: one path component, "
		    "without '/' but for a leading one, and not '.' or '..'",
		    o->shm);
	if (snprintf(pidpath, sizeof(pidpath), "%s/%s.pid", CTL_PID_DIR,
	    o->shm[0] == '/' ? o->shm + 1 : o->shm) >= (int)sizeof(pidpath))
		fatalx("-m %s: name too long", o->shm);
	if ((pfh = pidfile_open(pidpath, 0644, &other)) == NULL) {
		if (errno == EEXIST)
			fatalx("another capstats daemon (pid %d) holds %s",
			    (int)other, pidpath);
		fatal("pidfile %s", pidpath);
	}
	if (!o->foreground)
		detach();
	if (pidfile_write(pfh) == -1)
		fatal("pidfile %s", pidpath);

	if (setup_loop(err, sizeof(err)) == -1 ||
	    ctl_init(o->sock, err, sizeof(err)) == -1) {
		pidfile_remove(pfh);
		fatalx("%s", err);
	}
	if (sess_init(o->shm, o->max_sessions, err, sizeof(err)) == -1) {
		ctl_shutdown();
		pidfile_remove(pfh);
		fatalx("%s", err);
	}
	if (o->statefile != NULL)
		snprintf(statepath, sizeof(statepath), "%s", o->statefile);
	else {
		if (mkdir(CTL_STATE_DIR, 0700) == -1 && errno != EEXIST)
			log_warn("mkdir %s", CTL_STATE_DIR);
		snprintf(statepath, sizeof(statepath), "%s/%s.state",
		    CTL_STATE_DIR, o->shm[0] == '/' ? o->shm + 1 : o->shm);
	}
	state_init(statepath);
	state_restore();
	log_info("listening on %s, publishing /dev/shm/%s, %u sessions at most",
	    o->sock, o->shm[0] == '/' ? o->shm + 1 : o->shm, o->max_sessions);
	if (!o->foreground)
		detached();

	loop();

	ctl_shutdown();
	sess_shutdown();	/* cancels its sessions' compiles */
	compile_shutdown();
	loop_bury();
	free(graveyard);
	pidfile_remove(pfh);
	return 0;
}
