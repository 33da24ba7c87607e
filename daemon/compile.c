/*
 * compile.c: pcap_compile() out of the loop. libpcap's optimizer can take
 * seconds on a long filter, so filters compile in worker processes, one
 * filter at a time each, that keep a handle activated on each interface
 * they compile for. A worker that spends more than the deadline's CPU
 * time on one filter is killed and the filter refused; the next filter
 * has another worker. A few compile at once; the rest wait their turn.
 * A worker touches no daemon state.
 */
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <net/if.h>
#include <netpacket/packet.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capstats.h"
#include "compile.h"
#include "log.h"
#include "loop.h"

/*
 * The limit is on the worker's CPU time for the filter, so that a busy
 * machine does not refuse a plain one; the wall clock only bounds a
 * worker that gets no CPU at all.
 */
#define COMPILE_DEADLINE_MS	500
#define COMPILE_WALL_MS		(10 * COMPILE_DEADLINE_MS)
#define COMPILE_RUNNING_MAX	4	/* workers, a filter each at most */
#define COMPILE_SNAPLEN		128
#define COMPILE_BUFFER		(64 * 1024)
#define MSG_MAX			256
#define WORKER_HANDLES		8	/* interfaces whose handle a worker keeps */
#define WORKER_IDLE_S		30	/* then each worker but one ends */
#define QUIET_PROTO		0x88b5	/* IEEE 802 local experimental ethertype */

#define MS	1000000ull

/*
 * The loop and a worker share a SOCK_SEQPACKET pair, one message a
 * record. The loop asks with a request and the filter's text; the worker
 * answers with a result and the program, or a message.
 */
struct request {
	uint64_t	id;
	uint32_t	dead_ok;
	char		iface[CAPSTATS_IFACE_MAX + 1];
};

#define REQUEST_MAX	(sizeof(struct request) + CTL_FILTER_MAX)

struct result_hdr {
	uint64_t	id;
	int32_t		status;		/* enum ctl_status */
	int32_t		dlt;		/* the interface's link type, or -1 */
	uint32_t	len;		/* instructions, or bytes of message */
	uint32_t	pad;
};

#define RESULT_MAX	(sizeof(struct result_hdr) + \
			 BPF_MAXINSNS * sizeof(struct bpf_insn))

enum ctl_status
pcap_activate_error(pcap_t *p, int rc, const char *iface, char *err,
    size_t errlen)
{
	const char *why = pcap_geterr(p);

	switch (rc) {
	case PCAP_ERROR_NO_SUCH_DEVICE:
		snprintf(err, errlen, "%s: no such interface", iface);
		return CTL_BADIFACE;
	case PCAP_ERROR_IFACE_NOT_UP:
		snprintf(err, errlen, "%s: interface is down", iface);
		return CTL_BADIFACE;
	case PCAP_ERROR_PERM_DENIED:
		snprintf(err, errlen, "%s: %s", iface, why);
		return CTL_PERM;
	default:
		snprintf(err, errlen, "%s: %s", iface, why);
		return strstr(why, "annot allocate memory") != NULL ?
		    CTL_NOMEM : CTL_BADIFACE;
	}
}

void
pcap_choose_link(pcap_t *p, const char *iface)
{
	if (strcmp(iface, "any") == 0 && pcap_datalink(p) == DLT_LINUX_SLL)
		pcap_set_datalink(p, DLT_LINUX_SLL2);
}

/* ---- the worker */

/* A handle kept for an interface while its index and type stay the same. */
struct whandle {
	pcap_t		*p;		/* NULL: a free slot */
	char		 iface[CAPSTATS_IFACE_MAX + 1];
	int		 ifindex, hwtype;
	uint64_t	 used;
};

static struct whandle whandles[WORKER_HANDLES];
static pcap_t *wdead;			/* Ethernet, for the syntax only */
static uint64_t wclock;
static int wioctl = -1;

/* Answer request ID: the header, then LEN bytes of BODY. 0, or -1. */
static int
answer(int fd, uint64_t id, enum ctl_status st, int dlt, uint32_t count,
    const void *body, size_t len)
{
	struct result_hdr h = { id, (int32_t)st, dlt, count, 0 };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, len } };
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;

	while ((n = sendmsg(fd, &m, MSG_NOSIGNAL)) == -1 && errno == EINTR)
		;
	return n == (ssize_t)(sizeof(h) + len) ? 0 : -1;
}

static int
refuse(int fd, uint64_t id, enum ctl_status st, int dlt, const char *msg)
{
	return answer(fd, id, st, dlt, (uint32_t)strlen(msg), msg, strlen(msg));
}

/* A live handle on IFACE, as the capture will have; NULL, with ERR. */
static pcap_t *
wactivate(const char *iface, enum ctl_status *st, char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_t *p;
	int rc;

	*st = CTL_BADIFACE;
	if ((p = pcap_create(iface, ebuf)) == NULL) {
		snprintf(err, errlen, "%s: %.200s", iface, ebuf);
		return NULL;
	}
	pcap_set_snaplen(p, COMPILE_SNAPLEN);
	pcap_set_buffer_size(p, COMPILE_BUFFER);
	if ((rc = pcap_activate(p)) < 0) {
		*st = pcap_activate_error(p, rc, iface, err, errlen);
		pcap_close(p);
		return NULL;
	}
	pcap_choose_link(p, iface);
	return p;
}

/*
 * A kept handle only tells pcap_compile() the link type and what the
 * kernel's BPF can do; its ring is never read. Bound to one protocol no
 * traffic carries instead of all, its socket is given no packet, and
 * costs the interface's traffic nothing. (Protocol 0 would keep the one
 * it had.)
 */
static int
wquiet(pcap_t *p, int ifindex)
{
	struct sockaddr_ll sll = { .sll_family = AF_PACKET,
	    .sll_protocol = htons(QUIET_PROTO),
	    .sll_ifindex = ifindex > 0 ? ifindex : 0 };

	return bind(pcap_fileno(p), (struct sockaddr *)&sll, sizeof(sll));
}

/* A free slot for a handle, the least recently used closed if need be. */
static struct whandle *
wslot(void)
{
	struct whandle *h, *old = &whandles[0];

	for (h = whandles; h < whandles + WORKER_HANDLES; h++) {
		if (h->p == NULL)
			return h;
		if (h->used < old->used)
			old = h;
	}
	pcap_close(old->p);
	old->p = NULL;
	return old;
}

/*
 * The handle to compile on: a live one on IFACE, as the capture will be,
 * since only there does libpcap know the link type and test the VLAN tag
 * the kernel took out of the packet; or, when DEAD_OK and the interface
 * cannot be opened, an Ethernet one that checks the filter's syntax.
 * The handle of a network interface, or of "any", is kept (*KEPT) until
 * the name means another interface; one of another device is the
 * caller's to close. NULL, with the reason in ERR.
 */
static pcap_t *
whandle(const char *iface, bool dead_ok, bool *kept, enum ctl_status *st,
    char *err, size_t errlen)
{
	int flags = -1, ifindex = -1, hwtype = -1;
	struct whandle *h;
	struct ifreq ifr;
	pcap_t *p;

	*kept = true;
	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, iface, sizeof(ifr.ifr_name));
	if (ioctl(wioctl, SIOCGIFFLAGS, &ifr) == 0)
		flags = (unsigned short)ifr.ifr_flags;
	if (ioctl(wioctl, SIOCGIFINDEX, &ifr) == 0)
		ifindex = ifr.ifr_ifindex;
	if (ioctl(wioctl, SIOCGIFHWADDR, &ifr) == 0)
		hwtype = ifr.ifr_hwaddr.sa_family;
	if (flags != -1 && !(flags & IFF_UP)) {
		*st = CTL_BADIFACE;
		snprintf(err, errlen, "%s: interface is down", iface);
		goto dead;
	}
	for (h = whandles; h < whandles + WORKER_HANDLES; h++) {
		if (h->p == NULL || strcmp(h->iface, iface) != 0)
			continue;
		if (h->ifindex == ifindex && h->hwtype == hwtype) {
			h->used = ++wclock;
			return h->p;
		}
		pcap_close(h->p);
		h->p = NULL;
	}
	if ((p = wactivate(iface, st, err, errlen)) == NULL)
		goto dead;
	if ((ifindex == -1 && strcmp(iface, "any") != 0) ||
	    wquiet(p, ifindex) == -1) {
		*kept = false;
		return p;
	}
	h = wslot();
	h->p = p;
	strlcpy(h->iface, iface, sizeof(h->iface));
	h->ifindex = ifindex;
	h->hwtype = hwtype;
	h->used = ++wclock;
	return p;
dead:
	if (dead_ok && wdead == NULL)
		wdead = pcap_open_dead(DLT_EN10MB, COMPILE_SNAPLEN);
	return dead_ok ? wdead : NULL;
}

/* Compile on P and send the program or the reason; 0, or -1. */
static int
wprogram(int fd, uint64_t id, pcap_t *p, const char *filter)
{
	struct bpf_program prog;
	char msg[MSG_MAX];
	int dlt = pcap_datalink(p), rc;

	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == -1) {
		snprintf(msg, sizeof(msg), "filter '%.120s': %s", filter,
		    pcap_geterr(p));
		return refuse(fd, id, CTL_BADFILTER, dlt, msg);
	}
	if (prog.bf_len > BPF_MAXINSNS) {
		snprintf(msg, sizeof(msg), "filter '%.100s' compiles to %u "
		    "instructions; the kernel takes at most %d", filter,
		    prog.bf_len, BPF_MAXINSNS);
		rc = refuse(fd, id, CTL_BADFILTER, dlt, msg);
	} else
		rc = answer(fd, id, CTL_OK, dlt, prog.bf_len, prog.bf_insns,
		    prog.bf_len * sizeof(*prog.bf_insns));
	pcap_freecode(&prog);
	return rc;
}

static int
wcompile(int fd, const struct request *rq, const char *filter)
{
	char err[MSG_MAX];
	enum ctl_status st;
	bool kept;
	pcap_t *p;
	int rc;

	if ((p = whandle(rq->iface, rq->dead_ok, &kept, &st, err,
	    sizeof(err))) == NULL)
		return refuse(fd, rq->id, st, -1, err);
	rc = wprogram(fd, rq->id, p, filter);
	if (!kept)
		pcap_close(p);
	return rc;
}

/*
 * Keep nothing of the daemon's but the socket FD, which becomes 3: no
 * other descriptor, and neither the segment nor a libpcap ring mapped,
 * which would keep alive what the daemon closes.
 */
static void
wforget(int fd)
{
	unsigned long start, end;
	char line[512], perms[5], *path;
	struct dirent *e;
	bool whole = true;
	FILE *f;
	DIR *d;
	int n;

	if (fd != 3 && (dup2(fd, 3) == -1 || close(fd) == -1))
		_exit(1);
	if (close_range(4, ~0U, 0) == -1 &&
	    (d = opendir("/proc/self/fd")) != NULL) {
		while ((e = readdir(d)) != NULL)
			if ((n = atoi(e->d_name)) > 3 && n != dirfd(d))
				close(n);
		closedir(d);
	}
	if ((f = fopen("/proc/self/maps", "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		n = 0;
		if (whole && sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start,
		    &end, perms, &n) == 3 && n > 0 && perms[3] == 's') {
			path = line + n;
			if (strncmp(path, "socket:[", 8) == 0 ||
			    strncmp(path, "/dev/shm/", 9) == 0)
				munmap((void *)start, end - start);
		}
		whole = strchr(line, '\n') != NULL;
	}
	fclose(f);
}

/*
 * Compile what comes, one filter at a time, until the loop has gone. The
 * signals the daemon takes stay blocked: the daemon ends its workers,
 * and they die with it.
 */
static void __attribute__((noreturn))
worker_main(int fd, pid_t daemon)
{
	static char buf[REQUEST_MAX + 1];
	struct request rq;
	ssize_t n;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != daemon)
		_exit(0);
	wforget(fd);
	fd = 3;
	if ((wioctl = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		_exit(1);
	for (;;) {
		if ((n = recv(fd, buf, REQUEST_MAX, MSG_TRUNC)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		if ((size_t)n < sizeof(rq) || (size_t)n > REQUEST_MAX)
			_exit(1);
		memcpy(&rq, buf, sizeof(rq));
		rq.iface[CAPSTATS_IFACE_MAX] = '\0';
		buf[n] = '\0';
		if (wcompile(fd, &rq, buf + sizeof(rq)) == -1)
			_exit(1);
	}
}

/* ---- the loop's side */

struct worker {
	struct evsrc		 ev;		/* the socket to it */
	TAILQ_ENTRY(worker)	 entry;
	pid_t			 pid;
	clockid_t		 clock;		/* its CPU time ... */
	bool			 has_clock;	/* ... or /proc's */
	bool			 busy;		/* sent a filter, no answer yet */
	bool			 lost;		/* went by itself: reported when reaped */
	struct compile_job	*job;		/* the filter's; NULL: cancelled */
	uint64_t		 id;
	uint64_t		 cpu0;		/* ns of CPU time when sent */
	uint64_t		 deadline;	/* monotonic: COMPILE_WALL_MS */
	uint64_t		 idle_since;	/* monotonic */
};

struct compile_job {
	TAILQ_ENTRY(compile_job) entry;
	struct worker		*w;		/* NULL: waiting its turn */
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	char			*filter;
	bool			 dead_ok;
	compile_fn		*done;
	void			*arg;
};

TAILQ_HEAD(worker_list, worker);
static struct worker_list workers = TAILQ_HEAD_INITIALIZER(workers);
static struct worker_list dying = TAILQ_HEAD_INITIALIZER(dying);
static unsigned nworkers;
static TAILQ_HEAD(, compile_job) jobs = TAILQ_HEAD_INITIALIZER(jobs);
static uint64_t lastid;
static union {
	struct result_hdr	h;
	char			b[RESULT_MAX];
} rbuf;

static void worker_io(struct evsrc *, uint32_t);

/* The CPU time W has used, in ns. */
static uint64_t
worker_cpu(const struct worker *w)
{
	unsigned long long utime, stime;
	char path[64], buf[1024], *p;
	struct timespec ts;
	ssize_t n;
	int fd;

	if (w->has_clock && clock_gettime(w->clock, &ts) == 0)
		return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)w->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* After the command name's closing parenthesis: fields 3 to 15. */
	if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 1,
	    " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
	    &utime, &stime) != 2)
		return 0;
	return (utime + stime) * 1000000000u /
	    (unsigned long long)sysconf(_SC_CLK_TCK);
}

static struct worker *
worker_start(void)
{
	struct worker *w;
	pid_t self = getpid();
	int sv[2], e;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		free(w);
		return NULL;
	}
	if ((w->pid = fork()) == 0) {
		close(sv[0]);
		worker_main(sv[1], self);
	}
	e = errno;
	close(sv[1]);
	w->ev.fd = sv[0];
	w->ev.fn = worker_io;
	if (w->pid == -1 || ev_add(&w->ev, EPOLLIN) == -1) {
		if (w->pid != -1)
			e = errno;	/* ev_add's; fork's is kept above */
		close(sv[0]);
		if (w->pid == -1)
			free(w);
		else {
			w->ev.fd = -1;
			kill(w->pid, SIGKILL);	/* reaped by the tick */
			TAILQ_INSERT_TAIL(&dying, w, entry);
		}
		errno = e;
		return NULL;
	}
	w->has_clock = clock_getcpuclockid(w->pid, &w->clock) == 0;
	w->idle_since = now_mono();
	TAILQ_INSERT_TAIL(&workers, w, entry);
	nworkers++;
	log_debug("filter compiler %d started", (int)w->pid);
	return w;
}

static void worker_report(struct worker *, int);

/*
 * Reap the workers that were ended; WAIT: until each has. A lost one's
 * report may start or end others, so the walk starts again after it;
 * no caller walks a list of workers meanwhile.
 */
static void
worker_reap(bool wait)
{
	struct worker *w, *next;
	int status = 0;
	pid_t rc;

again:
	TAILQ_FOREACH_SAFE(w, &dying, entry, next) {
		while ((rc = waitpid(w->pid, &status, wait ? 0 : WNOHANG)) == -1 &&
		    errno == EINTR)
			;
		if (rc == 0)
			continue;
		TAILQ_REMOVE(&dying, w, entry);
		loop_free_later(w);	/* freed after this turn */
		if (w->lost) {
			worker_report(w, status);
			goto again;
		}
	}
}

/* End W; it is reaped by the tick. */
static void
worker_stop(struct worker *w)
{
	TAILQ_REMOVE(&workers, w, entry);
	nworkers--;
	ev_del(&w->ev);
	close(w->ev.fd);
	w->ev.fd = -1;
	kill(w->pid, SIGKILL);		/* not reaped yet: still ours */
	TAILQ_INSERT_TAIL(&dying, w, entry);
}

static void
job_free(struct compile_job *j)
{
	TAILQ_REMOVE(&jobs, j, entry);
	free(j->filter);
	free(j);
}

static void
job_report(struct compile_job *j, struct compiled *c)
{
	compile_fn *done = j->done;
	void *arg = j->arg;

	job_free(j);
	compile_run_queue();
	done(arg, c);
}

static void
job_fail(struct compile_job *j, enum ctl_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
job_fail(struct compile_job *j, enum ctl_status st, const char *fmt, ...)
{
	struct compiled c = { .status = st, .dlt = -1 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c.err, sizeof(c.err), fmt, ap);
	va_end(ap);
	job_report(j, &c);
}

static void
job_toolong(struct compile_job *j)
{
	job_fail(j, CTL_TOOLONG, "filter '%.100s%s' takes more than %d ms to "
	    "compile; simplify it", j->filter, strlen(j->filter) > 100 ?
	    "..." : "", COMPILE_DEADLINE_MS);
}

/* Give J to W, which is idle; 0, or -1 with errno. */
static int
job_send(struct compile_job *j, struct worker *w)
{
	static char buf[REQUEST_MAX];
	struct request rq = { .id = lastid + 1, .dead_ok = j->dead_ok };
	size_t len = strlen(j->filter);
	int e;

	if (len > CTL_FILTER_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	strlcpy(rq.iface, j->iface, sizeof(rq.iface));
	memcpy(buf, &rq, sizeof(rq));
	memcpy(buf + sizeof(rq), j->filter, len);
	if (send(w->ev.fd, buf, sizeof(rq) + len,
	    MSG_DONTWAIT | MSG_NOSIGNAL) == -1) {
		e = errno;
		worker_stop(w);
		errno = e;
		return -1;
	}
	w->id = ++lastid;
	w->busy = true;
	w->job = j;
	w->cpu0 = worker_cpu(w);
	w->deadline = now_mono() + COMPILE_WALL_MS * MS;
	j->w = w;
	return 0;
}

/*
 * Give waiting jobs to idle workers, starting workers while fewer than
 * COMPILE_RUNNING_MAX run. The first starts with the loop, while the
 * daemon is small and its fork cheap.
 */
void
compile_run_queue(void)
{
	static bool first = true;
	struct compile_job *j, *next;
	struct worker *w;

	if (first) {
		first = false;
		worker_start();		/* or when a filter comes */
	}
	for (j = TAILQ_FIRST(&jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->w != NULL)
			continue;
		TAILQ_FOREACH(w, &workers, entry)
			if (!w->busy)
				break;
		if (w == NULL && nworkers >= COMPILE_RUNNING_MAX)
			return;
		if ((w == NULL && (w = worker_start()) == NULL) ||
		    job_send(j, w) == -1) {
			job_fail(j, CTL_INTERNAL, "compiling the filter: %s",
			    strerror(errno));
			return;		/* job_fail ran the queue */
		}
	}
}

/* W's answer of length N, in rbuf, for J: a program or a message. */
static void
job_answer(struct compile_job *j, size_t n)
{
	size_t body = n - sizeof(rbuf.h);
	struct compiled c = { .dlt = -1 };
	struct bpf_program prog;

	if (n > sizeof(rbuf)) {
		job_fail(j, CTL_INTERNAL, "compiling the filter: the answer "
		    "is too long");
		return;
	}
	c.status = rbuf.h.status >= 0 && rbuf.h.status < CTL_NSTATUS ?
	    (enum ctl_status)rbuf.h.status : CTL_INTERNAL;
	c.dlt = rbuf.h.dlt;
	if (c.status != CTL_OK) {
		snprintf(c.err, sizeof(c.err), "%.*s", (int)body,
		    rbuf.b + sizeof(rbuf.h));
		job_report(j, &c);
		return;
	}
	if (rbuf.h.len > BPF_MAXINSNS ||
	    body != rbuf.h.len * sizeof(struct bpf_insn) ||
	    (prog.bf_insns = calloc(rbuf.h.len ? rbuf.h.len : 1,
	    sizeof(struct bpf_insn))) == NULL) {
		job_fail(j, CTL_INTERNAL, "compiling the filter: %s",
		    body != rbuf.h.len * sizeof(struct bpf_insn) ?
		    "short program" : "out of memory");
		return;
	}
	memcpy(prog.bf_insns, rbuf.b + sizeof(rbuf.h), body);
	prog.bf_len = rbuf.h.len;
	c.prog = &prog;
	job_report(j, &c);
	pcap_freecode(&prog);
}

/* Lost worker W was reaped with STATUS: say how it went; its filter fails. */
static void
worker_report(struct worker *w, int status)
{
	struct compile_job *j = w->job;
	char how[64];

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d",
		    WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited with status %d",
		    WEXITSTATUS(status));
	log_warnx("filter compiler %d %s", (int)w->pid, how);
	w->job = NULL;
	if (j != NULL) {
		j->w = NULL;
		job_fail(j, CTL_INTERNAL, "compiling the filter: the compiler "
		    "process %s; try again", how);
	}
}

/*
 * W has gone by itself: its socket closed as it exited. It is reaped now
 * if it is already gone, else by the tick; then its filter fails and the
 * next has another worker.
 */
static void
worker_lost(struct worker *w)
{
	w->lost = true;
	worker_stop(w);
	worker_reap(false);
}

static void
worker_io(struct evsrc *src, uint32_t events)
{
	struct worker *w = (struct worker *)src;
	struct compile_job *j;
	ssize_t n;

	(void)events;
	while ((n = recv(w->ev.fd, rbuf.b, sizeof(rbuf),
	    MSG_DONTWAIT | MSG_TRUNC)) == -1 && errno == EINTR)
		;
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {
		worker_lost(w);
		return;
	}
	if ((size_t)n < sizeof(rbuf.h) || !w->busy || rbuf.h.id != w->id)
		return;
	j = w->job;
	w->busy = false;
	w->job = NULL;
	w->idle_since = now_mono();
	if (j == NULL)
		compile_run_queue();
	else {
		j->w = NULL;
		job_answer(j, (size_t)n);
	}
}

struct compile_job *
compile_start(const char *iface, const char *filter, bool dead_ok,
    compile_fn *done, void *arg)
{
	struct compile_job *j;

	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->filter = strdup(filter)) == NULL) {
		free(j);
		return NULL;
	}
	strlcpy(j->iface, iface, sizeof(j->iface));
	j->dead_ok = dead_ok;
	j->done = done;
	j->arg = arg;
	TAILQ_INSERT_TAIL(&jobs, j, entry);
	return j;
}

/*
 * The worker that has J compiles on, within the deadline, and its answer
 * is dropped: a worker is never killed in the middle of a plain filter.
 */
void
compile_cancel(struct compile_job *j)
{
	if (j->w != NULL)
		j->w->job = NULL;
	job_free(j);
}

void
compile_tick(uint64_t now)
{
	struct worker *w, *next;
	struct compile_job *j;

	worker_reap(false);
	TAILQ_FOREACH_SAFE(w, &workers, entry, next) {
		if (!w->busy) {
			if (nworkers > 1 &&
			    now > w->idle_since + WORKER_IDLE_S * 1000 * MS)
				worker_stop(w);
			continue;
		}
		if (now < w->deadline &&
		    worker_cpu(w) <= w->cpu0 + COMPILE_DEADLINE_MS * MS)
			continue;
		if (now >= w->deadline)
			log_warnx("filter compiler %d: no answer in %d ms; "
			    "killed", (int)w->pid, COMPILE_WALL_MS);
		j = w->job;
		worker_stop(w);
		if (j != NULL) {
			j->w = NULL;
			job_toolong(j);
			return;		/* the lists changed; the next tick goes on */
		}
	}
}

void
compile_shutdown(void)
{
	while (!TAILQ_EMPTY(&jobs))
		compile_cancel(TAILQ_FIRST(&jobs));
	while (!TAILQ_EMPTY(&workers))
		worker_stop(TAILQ_FIRST(&workers));
	worker_reap(true);
}

static struct loop_work compile_work = {
	.tick = compile_tick,
	.turn = compile_run_queue,
};

void
compile_init(void)
{
	loop_register(&compile_work);
}
