/*
 * compile.c: pcap_compile() in a child, without stopping the loop.
 * libpcap's optimizer can take seconds on a long filter: each compile runs
 * in a child of its own, read through a pipe the loop watches, and one the
 * child that has used more than its CPU time is killed and refused. A few
 * run at once; the rest wait their turn. The child only compiles; it
 * touches no daemon state.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/wait.h>

#include <net/if.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capstats.h"
#include "compile.h"
#include "iface.h"
#include "log.h"
#include "loop.h"

/*
 * The limit is on the child's own CPU time, so that a busy machine does
 * not refuse a plain filter; the wall clock only bounds a child that gets
 * no CPU at all.
 */
#define COMPILE_DEADLINE_MS	500
#define COMPILE_WALL_MS		(10 * COMPILE_DEADLINE_MS)
#define COMPILE_RUNNING_MAX	4	/* children at once */
#define COMPILE_SNAPLEN		128
#define COMPILE_BUFFER		(64 * 1024)
#define MSG_MAX			256

/* What the child sends: this header, then the program or a message. */
struct result_hdr {
	int32_t		status;		/* enum ctl_status */
	int32_t		dlt;		/* the interface's link type, or -1 */
	uint32_t	len;		/* instructions, or bytes of message */
};

#define RESULT_MAX	(sizeof(struct result_hdr) + \
			 BPF_MAXINSNS * sizeof(struct bpf_insn))

struct compile_job {
	struct evsrc		 ev;		/* the pipe from the child */
	TAILQ_ENTRY(compile_job) entry;
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	char			*filter;
	bool			 dead_ok;
	compile_fn		*done;
	void			*arg;
	pid_t			 pid;		/* 0: waiting its turn */
	uint64_t		 deadline;	/* monotonic: COMPILE_WALL_MS */
	size_t			 got;
	char			 buf[RESULT_MAX];
};

static TAILQ_HEAD(, compile_job) jobs = TAILQ_HEAD_INITIALIZER(jobs);
static unsigned nrunning;

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

/* ---- the child */

/* Send a refusal; 0, or -1 when the parent cannot hear it. */
static int
child_say(int fd, enum ctl_status st, int dlt, const char *msg)
{
	struct result_hdr h = { (int32_t)st, dlt, (uint32_t)strlen(msg) };

	if (write(fd, &h, sizeof(h)) != sizeof(h) || write(fd, msg, h.len) == -1)
		return -1;
	return 0;
}

/*
 * A handle to compile on: a live one on IFACE, as the capture will be,
 * since only there does libpcap know the link type and test the VLAN tag
 * the kernel took out of the packet; or, when DEAD_OK and the interface
 * cannot be opened, an Ethernet one that checks the filter's syntax.
 * NULL, with the reason in ERR.
 */
static pcap_t *
child_handle(const char *iface, bool dead_ok, enum ctl_status *st, char *err,
    size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_t *p;
	int rc;

	*st = CTL_BADIFACE;
	if ((rc = iface_flags(iface)) != -1 && !(rc & IFF_UP))
		snprintf(err, errlen, "%s: interface is down", iface);
	else if ((p = pcap_create(iface, ebuf)) == NULL)
		snprintf(err, errlen, "%s: %.200s", iface, ebuf);
	else {
		pcap_set_snaplen(p, COMPILE_SNAPLEN);
		pcap_set_buffer_size(p, COMPILE_BUFFER);
		if ((rc = pcap_activate(p)) >= 0) {
			pcap_choose_link(p, iface);
			return p;
		}
		*st = pcap_activate_error(p, rc, iface, err, errlen);
		pcap_close(p);
	}
	return dead_ok ? pcap_open_dead(DLT_EN10MB, COMPILE_SNAPLEN) : NULL;
}

/* Compile on P and send the program or the reason; 0, or -1. */
static int
child_compile(int fd, pcap_t *p, const char *filter)
{
	struct result_hdr h = { CTL_OK, pcap_datalink(p), 0 };
	struct bpf_program prog;
	char msg[MSG_MAX];
	size_t n;
	int rc;

	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == -1) {
		snprintf(msg, sizeof(msg), "filter '%.120s': %s", filter,
		    pcap_geterr(p));
		return child_say(fd, CTL_BADFILTER, h.dlt, msg);
	}
	if (prog.bf_len > BPF_MAXINSNS) {
		snprintf(msg, sizeof(msg), "filter '%.100s' compiles to %u "
		    "instructions; the kernel takes at most %d", filter,
		    prog.bf_len, BPF_MAXINSNS);
		rc = child_say(fd, CTL_BADFILTER, h.dlt, msg);
	} else {
		h.len = prog.bf_len;
		n = h.len * sizeof(*prog.bf_insns);
		rc = write(fd, &h, sizeof(h)) == sizeof(h) &&
		    write(fd, prog.bf_insns, n) == (ssize_t)n ? 0 : -1;
	}
	pcap_freecode(&prog);
	return rc;
}

static void __attribute__((noreturn))
child(int fd, const char *iface, const char *filter, bool dead_ok)
{
	char err[MSG_MAX];
	enum ctl_status st;
	pcap_t *p;
	int rc;

	if ((p = child_handle(iface, dead_ok, &st, err, sizeof(err))) == NULL)
		rc = child_say(fd, st, -1, err);
	else {
		rc = child_compile(fd, p, filter);
		pcap_close(p);
	}
	_exit(rc == 0 ? 0 : 1);
}

/* ---- the parent */

static void job_io(struct evsrc *, uint32_t);

static void
job_free(struct compile_job *j)
{
	TAILQ_REMOVE(&jobs, j, entry);
	free(j->filter);
	loop_free_later(j);
}

/* End J's child, if it runs; true when it was running. */
static bool
job_end(struct compile_job *j, bool kill_it)
{
	if (j->pid == 0)
		return false;
	ev_del(&j->ev);
	close(j->ev.fd);
	j->ev.fd = -1;
	if (kill_it)
		kill(j->pid, SIGKILL);
	while (waitpid(j->pid, NULL, 0) == -1 && errno == EINTR)
		;
	j->pid = 0;
	nrunning--;
	return true;
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

static int
job_spawn(struct compile_job *j)
{
	int fds[2];

	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1)
		return -1;
	if ((j->pid = fork()) == -1) {
		j->pid = 0;
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (j->pid == 0) {
		close(fds[0]);
		child(fds[1], j->iface, j->filter, j->dead_ok);
	}
	close(fds[1]);
	nrunning++;
	j->ev.fd = fds[0];
	j->ev.fn = job_io;
	j->deadline = now_mono() + COMPILE_WALL_MS * 1000000ull;
	if (ev_add(&j->ev, EPOLLIN) == -1) {
		job_end(j, true);
		return -1;
	}
	return 0;
}

/* Start waiting jobs while fewer than COMPILE_RUNNING_MAX run. */
void
compile_run_queue(void)
{
	struct compile_job *j, *next;

	for (j = TAILQ_FIRST(&jobs); j != NULL && nrunning < COMPILE_RUNNING_MAX;
	    j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->pid != 0)
			continue;
		if (job_spawn(j) == -1) {
			job_fail(j, CTL_INTERNAL, "compiling the filter: %s",
			    strerror(errno));
			return;		/* job_fail ran the queue */
		}
	}
}

/* The whole reply has come: a program or a message. */
static void
job_result(struct compile_job *j)
{
	struct compiled c = { .dlt = -1 };
	struct bpf_program prog;
	struct result_hdr h;
	size_t body;

	if (j->got < sizeof(h)) {
		job_fail(j, CTL_INTERNAL, "compiling the filter: the compiler "
		    "failed");
		return;
	}
	memcpy(&h, j->buf, sizeof(h));
	body = j->got - sizeof(h);
	c.status = h.status >= 0 && h.status < CTL_NSTATUS ?
	    (enum ctl_status)h.status : CTL_INTERNAL;
	c.dlt = h.dlt;
	if (c.status != CTL_OK) {
		snprintf(c.err, sizeof(c.err), "%.*s", (int)body,
		    j->buf + sizeof(h));
		job_report(j, &c);
		return;
	}
	if (h.len > BPF_MAXINSNS || body != h.len * sizeof(struct bpf_insn) ||
	    (prog.bf_insns = calloc(h.len ? h.len : 1,
	    sizeof(struct bpf_insn))) == NULL) {
		job_fail(j, CTL_INTERNAL, "compiling the filter: %s",
		    body != h.len * sizeof(struct bpf_insn) ? "short program" :
		    "out of memory");
		return;
	}
	memcpy(prog.bf_insns, j->buf + sizeof(h), body);
	prog.bf_len = h.len;
	c.prog = &prog;
	job_report(j, &c);
	pcap_freecode(&prog);
}

static void
job_io(struct evsrc *src, uint32_t events)
{
	struct compile_job *j = (struct compile_job *)src;
	ssize_t n;

	(void)events;
	for (;;) {
		n = read(j->ev.fd, j->buf + j->got, sizeof(j->buf) - j->got);
		if (n > 0 && (j->got += (size_t)n) < sizeof(j->buf))
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		break;		/* EOF, an error, or as much as may come */
	}
	job_end(j, n != 0);
	job_result(j);
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
	j->ev.fd = -1;
	TAILQ_INSERT_TAIL(&jobs, j, entry);
	return j;
}

void
compile_cancel(struct compile_job *j)
{
	if (job_end(j, true))
		compile_run_queue();
	job_free(j);
}

/* The CPU time child PID has used, in ms; 0 when it cannot be read. */
static uint64_t
child_cpu_ms(pid_t pid)
{
	unsigned long long utime, stime;
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
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
	return (utime + stime) * 1000u / (unsigned long long)sysconf(_SC_CLK_TCK);
}

void
compile_tick(uint64_t now)
{
	struct compile_job *j, *next;

	for (j = TAILQ_FIRST(&jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->pid == 0 || (now < j->deadline &&
		    child_cpu_ms(j->pid) <= COMPILE_DEADLINE_MS))
			continue;
		job_end(j, true);
		job_fail(j, CTL_TOOLONG, "filter '%.100s%s' takes more than "
		    "%d ms to compile; simplify it", j->filter,
		    strlen(j->filter) > 100 ? "..." : "", COMPILE_DEADLINE_MS);
		return;		/* the list changed; the next tick goes on */
	}
}

void
compile_shutdown(void)
{
	while (!TAILQ_EMPTY(&jobs))
		compile_cancel(TAILQ_FIRST(&jobs));
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
