/*
 * ctl.c: the control socket. Accepts connections, admits peers by the
 * credentials the kernel reports, frames request lines and queues replies.
 * All socket I/O is non-blocking with per-client limits; no handler here.
 */
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

#define ACCEPT_PAUSE_NS	(100ull * 1000000u)	/* after EMFILE */
#define PEER_GROUPS_MAX	1024
#define DISCARD_MAX	(64u << 10)	/* input read and dropped after an error */

struct client {
	struct evsrc		 ev;
	TAILQ_ENTRY(client)	 entry;
	char			 in[CTL_REQUEST_MAX];
	size_t			 inlen;
	struct reply		 out;
	size_t			 outoff;
	uint64_t		 deadline;	/* monotonic: dropped if idle past it */
	bool			 closing;	/* close once the reply is sent */
	bool			 draining;	/* reply sent; discarding input until EOF */
	bool			 eof;		/* the peer sends no more */
	bool			 more;		/* a complete request waits in in[] */
	bool			 waiting;	/* for the answer to its request */
	size_t			 discarded;
	uid_t			 uid;
	uint64_t		 id;		/* never reused */
};

static TAILQ_HEAD(, client) clients = TAILQ_HEAD_INITIALIZER(clients);
static unsigned nclients;
static uint64_t last_id;
static unsigned nmore;		/* clients with a request waiting */
static struct evsrc listener = { .fd = -1 };
static char sockpath[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char lockpath[sizeof(sockpath) + 8];
static int lockfd = -1;
static uint64_t accept_paused_until;
static bool accept_full;	/* at CTL_CLIENTS_MAX: the rest wait in the backlog */

static void client_io(struct evsrc *, uint32_t);

/* Replies. */

static void
rep_grow(struct reply *r, size_t need)
{
	size_t cap;
	char *p;

	if (r->failed || r->len + need <= r->cap)
		return;
	for (cap = r->cap ? r->cap : 256; cap < r->len + need; cap *= 2)
		;
	if (cap > CTL_REPLY_MAX || (p = realloc(r->buf, cap)) == NULL) {
		r->failed = true;
		return;
	}
	r->buf = p;
	r->cap = cap;
}

static void
rep_put(struct reply *r, const char *s, size_t n)
{
	rep_grow(r, n);
	if (r->failed)
		return;
	memcpy(r->buf + r->len, s, n);
	r->len += n;
}

/* Values never carry TAB, LF or other control bytes onto the wire. */
static void
rep_clean(struct reply *r, const char *s)
{
	size_t start = r->len, i;

	rep_put(r, s, strlen(s));
	if (r->failed)
		return;
	for (i = start; i < r->len; i++)
		if ((unsigned char)r->buf[i] < 0x20 || r->buf[i] == 0x7f)
			r->buf[i] = ' ';
}

/* End the row in progress, if any. */
static void
rep_eol(struct reply *r)
{
	if (r->len > 0 && r->buf[r->len - 1] != '\n')
		rep_put(r, "\n", 1);
}

void
rep_row(struct reply *r)
{
	rep_eol(r);
	rep_put(r, "row", 3);
}

void
rep_str(struct reply *r, const char *key, const char *val)
{
	rep_put(r, "\t", 1);
	rep_put(r, key, strlen(key));
	rep_put(r, "=", 1);
	rep_clean(r, val);
}

void
rep_u64(struct reply *r, const char *key, uint64_t val)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)val);
	rep_str(r, key, num);
}

void
rep_ok(struct reply *r)
{
	rep_eol(r);
	rep_put(r, "ok\n", 3);
}

enum ctl_status
rep_err(struct reply *r, enum ctl_status st, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rep_eol(r);
	rep_put(r, "error\t", 6);
	rep_clean(r, ctl_status_word(st));
	rep_put(r, "\t", 1);
	rep_clean(r, msg);
	rep_put(r, "\n", 1);
	return st;
}

/* Clients. */

static void client_set_more(struct client *, bool);

static void
client_close(struct client *c)
{
	client_set_more(c, false);
	ev_del(&c->ev);
	close(c->ev.fd);
	c->ev.fd = -1;
	TAILQ_REMOVE(&clients, c, entry);
	nclients--;
	free(c->out.buf);
	loop_free_later(c);
	if (accept_full && nclients < CTL_CLIENTS_MAX) {
		accept_full = false;
		if (accept_paused_until == 0)
			ev_mod(&listener, EPOLLIN);
	}
}

/* Send what is queued; false when the client is gone. */
static bool
client_flush(struct client *c)
{
	ssize_t n;

	while (c->outoff < c->out.len) {
		n = send(c->ev.fd, c->out.buf + c->outoff, c->out.len - c->outoff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			log_debug("client uid %u: send: %s", (unsigned)c->uid,
			    strerror(errno));
			client_close(c);
			return false;
		}
		c->outoff += (size_t)n;
	}
	if (c->outoff == c->out.len) {
		c->out.len = c->outoff = 0;
		/*
		 * Closing with unread input would reset the connection and
		 * could cost the peer our error reply: send EOF, then read
		 * and drop what the peer still sends until it hangs up.
		 */
		if (c->closing && !c->draining) {
			shutdown(c->ev.fd, SHUT_WR);
			c->draining = true;
		}
	}
	ev_mod(&c->ev, c->outoff < c->out.len ? EPOLLOUT : EPOLLIN);
	return true;
}

static void
client_request(struct client *c, char *line, size_t len)
{
	line[len] = '\0';
	if (!ctl_printable(line, len)) {
		rep_err(&c->out, CTL_BADREQ,
		    "request has bytes that are not printable ASCII");
		c->closing = true;
		return;
	}
	log_debug("client uid %u: %s", (unsigned)c->uid, line);
	c->out.client = c->id;
	c->out.later = false;
	cmd_exec(line, &c->out);
	c->waiting = c->out.later;
}

/* After an error: drop input until EOF; false when the client is gone. */
static bool
client_drain(struct client *c)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(c->ev.fd, buf, sizeof(buf), 0)) > 0)
		if ((c->discarded += (size_t)n) > DISCARD_MAX)
			break;
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return true;
	client_close(c);
	return false;
}

static void
client_set_more(struct client *c, bool more)
{
	if (c->more != more)
		nmore += more ? 1 : -1;
	c->more = more;
}

/*
 * Answer the next complete request, one per loop turn, so that a client
 * that sends many at once takes its turn with the others.
 */
static void
client_next(struct client *c)
{
	char *lf;
	size_t used;

	if (c->waiting)		/* one request at a time */
		return;
	if (!c->closing && (lf = memchr(c->in, '\n', c->inlen)) != NULL) {
		client_request(c, c->in, (size_t)(lf - c->in));
		used = (size_t)(lf - c->in) + 1;
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
		c->deadline = now_mono() + CTL_IDLE_MS * 1000000ull;
	} else if (!c->closing && c->inlen == sizeof(c->in)) {
		rep_err(&c->out, CTL_TOOLONG,
		    "request longer than %d bytes", CTL_REQUEST_MAX);
		c->closing = true;
	}
	/* After the peer's EOF, a partial last line is never completed. */
	if (c->eof && !c->closing && !c->waiting &&
	    memchr(c->in, '\n', c->inlen) == NULL)
		c->closing = true;
	client_set_more(c, !c->closing && !c->waiting &&
	    memchr(c->in, '\n', c->inlen) != NULL);
}

static void
client_read(struct client *c)
{
	ssize_t n;

	if (!c->eof && c->inlen < sizeof(c->in)) {
		n = recv(c->ev.fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			c->eof = true;
		else if (n > 0) {
			c->inlen += (size_t)n;
			c->deadline = now_mono() + CTL_IDLE_MS * 1000000ull;
		}
	}
	client_next(c);
}

static void
client_io(struct evsrc *src, uint32_t events)
{
	struct client *c = (struct client *)src;

	if (c->draining) {
		client_drain(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(c);
	if (c->out.failed) {
		log_warnx("client uid %u: reply too large or out of memory",
		    (unsigned)c->uid);
		client_close(c);
		return;
	}
	client_flush(c);
}

static bool
peer_in_group(int fd, gid_t primary)
{
	gid_t groups[PEER_GROUPS_MAX];
	socklen_t len = sizeof(groups);
	size_t i;

	if (primary == cfg.gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == -1) {
		log_warn("SO_PEERGROUPS");
		return false;
	}
	for (i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == cfg.gid)
			return true;
	return false;
}

static void
client_greet(struct client *c, const struct ucred *uc)
{
	struct reply *r = &c->out;

	if (uc->uid != 0 && !(cfg.has_group && peer_in_group(c->ev.fd, uc->gid))) {
		log_info("refused uid %u pid %d", (unsigned)uc->uid, (int)uc->pid);
		if (cfg.has_group)
			rep_err(r, CTL_PERM, "permission denied: uid %u is not "
			    "root and not in group %s", (unsigned)uc->uid,
			    cfg.group_name);
		else
			rep_err(r, CTL_PERM, "permission denied: uid %u is not "
			    "root", (unsigned)uc->uid);
		c->closing = true;
		return;
	}
	rep_put(r, "hello", 5);
	rep_u64(r, "proto", CTL_PROTO_VERSION);
	rep_u64(r, "pid", (uint64_t)getpid());
	{
		char inst[17];

		snprintf(inst, sizeof(inst), "%016llx",
		    (unsigned long long)cfg.instance);
		rep_str(r, "instance", inst);
	}
	rep_put(r, "\n", 1);
}

static void
ctl_accept(struct evsrc *src, uint32_t events)
{
	struct client *c;
	struct ucred uc;
	socklen_t len = sizeof(uc);
	int fd;

	(void)events;
	while (nclients < CTL_CLIENTS_MAX && (fd = accept4(src->fd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			log_warnx("out of memory for a client");
			close(fd);
			continue;
		}
		c->ev.fd = fd;
		c->ev.fn = client_io;
		c->id = ++last_id;
		c->deadline = now_mono() + CTL_IDLE_MS * 1000000ull;
		TAILQ_INSERT_TAIL(&clients, c, entry);
		nclients++;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1 ||
		    ev_add(&c->ev, EPOLLIN) == -1) {
			log_warn("new client");
			client_close(c);
			continue;
		}
		c->uid = uc.uid;
		client_greet(c, &uc);
		client_flush(c);
	}
	if (nclients >= CTL_CLIENTS_MAX) {
		accept_full = true;
		ev_mod(&listener, 0);
	} else if (errno == EMFILE || errno == ENFILE) {
		log_warn("accept");
		ev_mod(&listener, 0);
		accept_paused_until = now_mono() + ACCEPT_PAUSE_NS;
	}
}

static struct client *
client_by_id(uint64_t id)
{
	struct client *c;

	TAILQ_FOREACH(c, &clients, entry)
		if (c->id == id)
			return c;
	return NULL;
}

struct reply *
ctl_resume(uint64_t id)
{
	struct client *c = client_by_id(id);

	return c != NULL && c->waiting ? &c->out : NULL;
}

/* The answer is in: send it; the next request is read on this turn. */
void
ctl_resumed(uint64_t id)
{
	struct client *c = client_by_id(id);

	if (c == NULL || !c->waiting)
		return;
	c->waiting = false;
	c->out.later = false;
	c->deadline = now_mono() + CTL_IDLE_MS * 1000000ull;
	if (c->out.failed) {
		log_warnx("client uid %u: reply too large or out of memory",
		    (unsigned)c->uid);
		client_close(c);
		return;
	}
	client_set_more(c, true);
	client_flush(c);
}

bool
ctl_any_pending(void)
{
	return nmore > 0;
}

/* Clients with requests read but not yet answered: one more each. */
void
ctl_run_pending(void)
{
	struct client *c, *next;

	if (nmore == 0)
		return;
	for (c = TAILQ_FIRST(&clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->more)
			continue;
		client_next(c);
		if (c->out.failed) {
			client_close(c);
			continue;
		}
		client_flush(c);
	}
}

void
ctl_tick(uint64_t now)
{
	struct client *c, *next;

	if (accept_paused_until != 0 && now >= accept_paused_until) {
		accept_paused_until = 0;
		if (!accept_full)
			ev_mod(&listener, EPOLLIN);
	}
	for (c = TAILQ_FIRST(&clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->waiting && now >= c->deadline) {
			log_debug("client uid %u: idle, dropped", (unsigned)c->uid);
			client_close(c);
		}
	}
}

/*
 * Take the socket path: a lock file beside it says whether a live daemon
 * owns it; a socket left by a dead one is removed.
 */
static int
ctl_lock(const char *path, char *err, size_t errlen)
{
	snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lockfd == -1) {
		snprintf(err, errlen, "%s: %s", lockpath, strerror(errno));
		return -1;
	}
	if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "another capstats daemon is listening on %s",
		    path);
		close(lockfd);
		lockfd = -1;
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "remove stale %s: %s", path, strerror(errno));
		unlink(lockpath);
		close(lockfd);
		lockfd = -1;
		return -1;
	}
	return 0;
}

int
ctl_init(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -1;
	}
	strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	strlcpy(sockpath, path, sizeof(sockpath));
	if (ctl_lock(path, err, errlen) == -1)
		return -1;
	listener.fn = ctl_accept;
	listener.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listener.fd == -1)
		goto fail;
	/* The mode is right from the moment the file exists. */
	old = umask(cfg.has_group ? 0117 : 0177);
	if (bind(listener.fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if ((cfg.has_group && chown(path, 0, cfg.gid) == -1) ||
	    listen(listener.fd, SOMAXCONN) == -1 || ev_add(&listener, EPOLLIN) == -1) {
		snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
		unlink(path);
		goto undo;
	}
	return 0;
fail:
	snprintf(err, errlen, "socket %s: %s", path, strerror(errno));
undo:
	if (listener.fd != -1)
		close(listener.fd);
	listener.fd = -1;
	unlink(lockpath);
	close(lockfd);
	lockfd = -1;
	return -1;
}

void
ctl_shutdown(void)
{
	while (!TAILQ_EMPTY(&clients))
		client_close(TAILQ_FIRST(&clients));
	if (listener.fd != -1) {
		close(listener.fd);
		unlink(sockpath);
	}
	if (lockfd != -1) {
		unlink(lockpath);
		close(lockfd);
	}
}
