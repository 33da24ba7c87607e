/*
 * ctl.c: the control socket. Accepts connections, admits peers by the
 * credentials the kernel reports, shares the slots among uids, frames
 * request lines and queues replies. All socket I/O is non-blocking with
 * per-client limits; no handler here.
 */
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "loop.h"
#include "reply.h"

#define ACCEPT_PAUSE_NS	(100ull * 1000000u)	/* after EMFILE */
#define IDLE_NS		(CTL_IDLE_MS * 1000000ull)
#define PEER_GROUPS_MAX	1024
#define DISCARD_MAX	(64u << 10)	/* input read and dropped after an error */

struct client {
	struct evsrc		 ev;
	TAILQ_ENTRY(client)	 entry;
	char			 in[CTL_REQUEST_MAX];
	size_t			 inlen;
	struct reply		 out;
	size_t			 outoff;
	uint64_t		 since;		/* monotonic: connect or last request */
	uint32_t		 events;	/* what epoll watches for it */
	bool			 closing;	/* close once the reply is sent */
	bool			 draining;	/* reply sent; discarding input until EOF */
	bool			 eof;		/* the peer sends no more */
	bool			 more;		/* client_next() has work to do */
	bool			 waiting;	/* for the answer to its request */
	size_t			 discarded;
	uid_t			 uid;
};

static TAILQ_HEAD(, client) clients = TAILQ_HEAD_INITIALIZER(clients);
static unsigned nclients;
static unsigned nmore;		/* clients with a request waiting */
static struct evsrc listener = { .fd = -1 };
static char sockpath[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char lockpath[sizeof(sockpath) + 8];
static int lockfd = -1;
static uint64_t accept_paused_until;
static bool accept_full;	/* no client can make way: the rest wait in the backlog */

static void client_io(struct evsrc *, uint32_t);
static void client_resumed(struct reply *);

/* Clients. */

static void client_update(struct client *);
static void client_drop(struct client *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* A slot came free: take connections again, unless EMFILE paused it. */
static void
accept_resume(void)
{
	if (!accept_full)
		return;
	accept_full = false;
	if (accept_paused_until == 0)
		ev_mod(&listener, EPOLLIN);
}

static void
client_close(struct client *c)
{
	if (c->more)
		nmore--;
	c->more = false;
	ev_del(&c->ev);
	close(c->ev.fd);
	c->ev.fd = -1;
	TAILQ_REMOVE(&clients, c, entry);
	nclients--;
	reply_close(&c->out);
	loop_free_later(c);
	accept_resume();
}

/* Close C and say why in the log: a client is never dropped in silence. */
static void
client_drop(struct client *c, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_info("client uid %u: dropped: %s", (unsigned)c->uid, why);
	client_close(c);
}

/* Answer with an error, then hang up once it is sent. */
static void
client_fail(struct client *c, enum ctl_status st, const char *why)
{
	rep_err(&c->out, st, "%s", why);
	c->closing = true;
	log_info("client uid %u: dropped: %s", (unsigned)c->uid, why);
}

/* Everything queued went out. */
static void
client_sent(struct client *c)
{
	c->out.len = c->outoff = 0;
	/*
	 * A large reply's memory goes back once it is read; a buffer the
	 * budget's worth of replies fits in stays for the next ones.
	 */
	if (c->out.cap > 2 * CTL_REPLY_BUDGET) {
		free(c->out.buf);
		c->out.buf = NULL;
		c->out.cap = 0;
	}
	/*
	 * Closing with unread input would reset the connection: the peer
	 * would see an error after our reply instead of its end. Send EOF,
	 * then read and drop what the peer still sends until it hangs up.
	 */
	if (c->closing && !c->draining) {
		shutdown(c->ev.fd, SHUT_WR);
		c->draining = true;
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
	if (c->outoff == c->out.len)
		client_sent(c);
	client_update(c);
	return true;
}

/*
 * May C's next request be answered now? Not while the replies it has
 * not read pass the budget: a client that asks without reading holds
 * little memory, and loses nothing.
 */
static bool
client_can_take(const struct client *c)
{
	return !c->closing && !c->waiting &&
	    c->out.len - c->outoff < CTL_REPLY_BUDGET;
}

/* Keep the unsent replies at the front, so the queue never creeps on. */
static void
client_compact(struct client *c)
{
	if (c->outoff == 0)
		return;
	memmove(c->out.buf, c->out.buf + c->outoff, c->out.len - c->outoff);
	c->out.len -= c->outoff;
	c->outoff = 0;
}

static void
client_request(struct client *c, char *line, size_t len)
{
	line[len] = '\0';
	if (!ctl_printable(line, len)) {
		client_fail(c, CTL_BADREQ,
		    "request has bytes that are not printable ASCII");
		return;
	}
	log_debug("client uid %u: %s", (unsigned)c->uid, line);
	client_compact(c);
	c->out.later = false;
	cmd_exec(line, &c->out);
	c->waiting = c->out.later;
}

/* After an error: drop input until EOF. */
static void
client_drain(struct client *c)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(c->ev.fd, buf, sizeof(buf), 0)) > 0)
		if ((c->discarded += (size_t)n) > DISCARD_MAX) {
			client_drop(c, "went on sending after its error");
			return;
		}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	client_close(c);
}

/*
 * Answer the next complete request, one per loop turn, so that a client
 * that sends many at once takes its turn with the others. Only a
 * complete request counts as activity: bytes dripping in do not.
 */
static void
client_next(struct client *c)
{
	char *lf, why[64];
	size_t used;

	if (!client_can_take(c))
		return;
	if ((lf = memchr(c->in, '\n', c->inlen)) != NULL) {
		used = (size_t)(lf - c->in) + 1;
		c->since = now_mono();
		client_request(c, c->in, used - 1);
		memmove(c->in, c->in + used, c->inlen - used);
		c->inlen -= used;
	} else if (c->inlen == sizeof(c->in)) {
		snprintf(why, sizeof(why), "request longer than %d bytes",
		    CTL_REQUEST_MAX);
		client_fail(c, CTL_TOOLONG, why);
	}
	/* After the peer's EOF, a partial last line is never completed. */
	if (c->eof && !c->closing && !c->waiting &&
	    memchr(c->in, '\n', c->inlen) == NULL)
		c->closing = true;
}

static void
client_read(struct client *c)
{
	ssize_t n;

	if (!c->eof && c->inlen < sizeof(c->in)) {
		n = recv(c->ev.fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
			c->eof = true;
		else if (n > 0)
			c->inlen += (size_t)n;
	}
	client_next(c);
}

/* Whether client_next() has work for C on the next turn. */
static void
client_set_more(struct client *c)
{
	bool more;

	more = client_can_take(c) && (c->eof || c->inlen == sizeof(c->in) ||
	    memchr(c->in, '\n', c->inlen) != NULL);
	if (c->more != more)
		nmore += more ? 1 : -1;
	c->more = more;
}

/*
 * After anything happened to C. Input is watched only while there is
 * room for it, so a client held back does not wake the loop in vain.
 */
static void
client_update(struct client *c)
{
	uint32_t ev = 0;

	client_set_more(c);
	if (c->draining || (!c->eof && c->inlen < sizeof(c->in)))
		ev |= EPOLLIN;
	if (c->outoff < c->out.len)
		ev |= EPOLLOUT;
	if (ev != c->events && ev_mod(&c->ev, ev) == 0)
		c->events = ev;
}

/* After C's turn: drop it if its reply could not be built, else send. */
static void
client_answered(struct client *c)
{
	if (c->out.failed) {
		log_warnx("client uid %u: dropped: reply too large or out of "
		    "memory", (unsigned)c->uid);
		client_close(c);
		return;
	}
	client_flush(c);
}

static void
client_io(struct evsrc *src, uint32_t events)
{
	struct client *c = (struct client *)src;

	if (c->draining) {
		client_drain(c);
		return;
	}
	/* Hung up: the answer it waits for can reach no one. */
	if ((events & (EPOLLHUP | EPOLLERR)) && c->waiting) {
		log_debug("client uid %u: hung up", (unsigned)c->uid);
		client_close(c);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		client_read(c);
	client_answered(c);
}

/* Admission. */

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

/* Who a newcomer competes with for a slot (see proto.h). */
enum rivals {
	RIVALS_NONE,		/* there is room */
	RIVALS_UID,		/* its uid has its share */
	RIVALS_USERS,		/* users other than root have theirs */
	RIVALS_ALL		/* the table is full */
};

static enum rivals
rivals_of(uid_t uid)
{
	struct client *c;
	unsigned mine = 0, users = 0;

	TAILQ_FOREACH(c, &clients, entry) {
		mine += c->uid == uid;
		users += c->uid != 0;
	}
	if (uid != 0 && mine >= CTL_CLIENTS_UID)
		return RIVALS_UID;
	if (uid != 0 && users >= CTL_CLIENTS_MAX - CTL_CLIENTS_ROOT)
		return RIVALS_USERS;
	return nclients >= CTL_CLIENTS_MAX ? RIVALS_ALL : RIVALS_NONE;
}

static void
rivals_why(enum rivals r, uid_t uid, char *buf, size_t len)
{
	if (r == RIVALS_UID)
		snprintf(buf, len, "uid %u has its %d connections",
		    (unsigned)uid, CTL_CLIENTS_UID);
	else if (r == RIVALS_USERS)
		snprintf(buf, len, "users other than root have their %d "
		    "connections", CTL_CLIENTS_MAX - CTL_CLIENTS_ROOT);
	else
		snprintf(buf, len, "all %d connections are taken",
		    CTL_CLIENTS_MAX);
}

/* Is A a better client to displace than B? */
static bool
client_idler(const struct client *a, const struct client *b)
{
	bool asends = a->outoff < a->out.len, bsends = b->outoff < b->out.len;

	if (a->closing != b->closing)
		return a->closing;
	if (asends != bsends)		/* its reply would be cut short */
		return bsends;
	return a->since < b->since;
}

/*
 * The client a newcomer of UID displaces among R, or NULL: never one
 * waiting for an answer, nor one connected or asking within the grace.
 */
static struct client *
client_victim(enum rivals r, uid_t uid, uint64_t now)
{
	struct client *c, *best = NULL;

	TAILQ_FOREACH(c, &clients, entry) {
		if ((r == RIVALS_UID && c->uid != uid) ||
		    (r == RIVALS_USERS && c->uid == 0) || c->waiting ||
		    now < c->since + CTL_GRACE_MS * 1000000ull)
			continue;
		if (best == NULL || client_idler(c, best))
			best = c;
	}
	return best;
}

/* Can a connection be taken? Not while every slot is spoken for. */
static bool
ctl_room(uint64_t now)
{
	return nclients < CTL_CLIENTS_MAX ||
	    client_victim(RIVALS_ALL, 0, now) != NULL;
}

/* Room for a newcomer of UID; -1, with the reason, when none can be made. */
static int
client_make_room(uid_t uid, char *why, size_t whylen)
{
	enum rivals r = rivals_of(uid);
	struct client *c;

	if (r == RIVALS_NONE)
		return 0;
	rivals_why(r, uid, why, whylen);
	if ((c = client_victim(r, uid, now_mono())) == NULL)
		return -1;
	client_drop(c, "idle longest when %s", why);
	return 0;
}

/*
 * Turn a connection away with one error line. A request it sent already
 * stays unread: the peer reads our line first, then the reset.
 */
static void
conn_refuse(int fd, enum ctl_status st, const char *msg)
{
	struct reply r = { 0 };

	rep_err(&r, st, "%s", msg);
	if (!r.failed && send(fd, r.buf, r.len, MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
		log_debug("refusing a client: send: %s", strerror(errno));
	free(r.buf);
	close(fd);
}

/* Turn away a peer that is neither root nor, with -g, in the group. */
static void
conn_refuse_peer(int fd, const struct ucred *uc)
{
	char msg[256];

	log_info("client uid %u: refused: not root%s%s", (unsigned)uc->uid,
	    cfg.has_group ? " and not in group " : "",
	    cfg.has_group ? cfg.group_name : "");
	if (cfg.has_group)
		snprintf(msg, sizeof(msg), "permission denied: uid %u is not "
		    "root and not in group %s", (unsigned)uc->uid,
		    cfg.group_name);
	else
		snprintf(msg, sizeof(msg), "permission denied: uid %u is not "
		    "root", (unsigned)uc->uid);
	conn_refuse(fd, CTL_PERM, msg);
}

static void
client_greet(struct client *c)
{
	struct reply *r = &c->out;
	char inst[17];

	rep_line(r, "hello");
	rep_u64(r, "proto", CTL_PROTO_VERSION);
	rep_u64(r, "pid", (uint64_t)getpid());
	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)cfg.instance);
	rep_str(r, "instance", inst);
	rep_eol(r);
}

static void
client_new(int fd)
{
	char why[128], msg[192];
	struct client *c;
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == -1) {
		log_warn("new client: SO_PEERCRED");
		close(fd);
		return;
	}
	if (uc.uid != 0 && !(cfg.has_group && peer_in_group(fd, uc.gid))) {
		conn_refuse_peer(fd, &uc);
		return;
	}
	if (client_make_room(uc.uid, why, sizeof(why)) == -1) {
		log_info("client uid %u: refused: %s, none idle for %d ms",
		    (unsigned)uc.uid, why, CTL_GRACE_MS);
		snprintf(msg, sizeof(msg), "busy: %s, none idle for %d ms",
		    why, CTL_GRACE_MS);
		conn_refuse(fd, CTL_BUSY, msg);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("out of memory for a client");
		close(fd);
		return;
	}
	c->ev.fd = fd;
	c->ev.fn = client_io;
	reply_open(&c->out, client_resumed);
	c->uid = uc.uid;
	c->since = now_mono();
	TAILQ_INSERT_TAIL(&clients, c, entry);
	nclients++;
	if (ev_add(&c->ev, EPOLLIN) == -1) {
		log_warn("new client");
		client_close(c);
		return;
	}
	c->events = EPOLLIN;
	client_greet(c);
	client_flush(c);
}

static void
ctl_accept(struct evsrc *src, uint32_t events)
{
	bool room;
	int fd;

	(void)events;
	while ((room = ctl_room(now_mono())) && (fd = accept4(src->fd, NULL,
	    NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1)
		client_new(fd);
	if (!room) {
		accept_full = true;
		ev_mod(&listener, 0);
	} else if (errno == EMFILE || errno == ENFILE) {
		log_warn("accept");
		ev_mod(&listener, 0);
		accept_paused_until = now_mono() + ACCEPT_PAUSE_NS;
	}
}

/* The answer that came later is in: send it; the next request is read on this turn. */
static void
client_resumed(struct reply *r)
{
	struct client *c = (struct client *)((char *)r -
	    offsetof(struct client, out));

	c->waiting = false;
	c->since = now_mono();
	client_answered(c);
}

static bool
ctl_any_pending(void)
{
	return nmore > 0;
}

/* Clients with requests read but not yet answered: one more each. */
static void
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
		client_answered(c);
	}
}

static void
ctl_tick(uint64_t now)
{
	struct client *c, *next;

	if (accept_paused_until != 0 && now >= accept_paused_until) {
		accept_paused_until = 0;
		if (!accept_full)
			ev_mod(&listener, EPOLLIN);
	}
	/* Clients too young to displace a moment ago may be old enough now. */
	if (accept_full && ctl_room(now))
		accept_resume();
	for (c = TAILQ_FIRST(&clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->waiting && now >= c->since + IDLE_NS)
			client_drop(c, c->outoff < c->out.len ? "replies unread "
			    "for %d s" : "no request for %d s", CTL_IDLE_MS / 1000);
	}
}

static struct loop_work ctl_work = {
	.tick = ctl_tick,
	.turn = ctl_run_pending,
	.pending = ctl_any_pending,
};

/* Does no one listen on the socket at SUN? */
static bool
ctl_stale(const struct sockaddr_un *sun)
{
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return false;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	return rc == -1 && errno == ECONNREFUSED;
}

/*
 * Only a socket left by a daemon that died is removed from the path:
 * anything else there is someone else's, and a link is never followed.
 */
static int
ctl_clear(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	const char *path = sun->sun_path;
	struct stat st;

	if (lstat(path, &st) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket: not "
		    "replacing it", path);
		return -1;
	}
	if (!ctl_stale(sun)) {
		snprintf(err, errlen, "%s is a socket in use by another "
		    "program: not replacing it", path);
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "remove stale %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Open the lock file, which the daemon creates empty and never writes. */
static int
ctl_open_lock(char *err, size_t errlen)
{
	struct stat st;

	lockfd = open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (lockfd == -1) {
		snprintf(err, errlen, "%s: %s", lockpath, strerror(errno));
		return -1;
	}
	if (fstat(lockfd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size != 0) {
		snprintf(err, errlen, "%s exists and is not an empty file: not "
		    "taking it for a lock", lockpath);
		close(lockfd);
		lockfd = -1;
		return -1;
	}
	return 0;
}

/*
 * Take the socket path: a lock file beside it says whether a live daemon
 * owns it; a socket left by a dead one is removed.
 */
static int
ctl_lock(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	const char *path = sun->sun_path;

	snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
	if (ctl_open_lock(err, errlen) == -1)
		return -1;
	if (flock(lockfd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, errlen, "another capstats daemon is listening on %s",
		    path);
		close(lockfd);
		lockfd = -1;
		return -1;
	}
	if (ctl_clear(sun, err, errlen) == -1) {
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
	if (ctl_lock(&sun, err, errlen) == -1)
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
	loop_register(&ctl_work);
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
