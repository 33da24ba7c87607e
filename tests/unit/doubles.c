/*
 * doubles.c: the daemon from its segment up to its commands, for tests
 * that need no network and no root but a user namespace's: log.c,
 * proto.c, loop.c, reply.c, shm/writer.c and reader.c, sess.c, state.c
 * and cmd.c as they are, over doubles of the bottom: the clock, which moves only when
 * a test moves it; compile.c, whose filters compile on a dead Ethernet
 * handle and are answered on the loop's next turn; and the counting paths
 * (pcap.c, kpath.c), which count nothing. A test includes this file
 * first; ctl.c may follow it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* unshare(2) */
#endif

#include <sys/queue.h>

#include <fcntl.h>
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "compile.h"
#include "path.h"

/* ---- what the tests use */

/* The clocks every module reads: set them, or move both with dbl_sleep(). */
#define DBL_MONO_START	(1000 * 1000000000ull)
#define DBL_REAL_START	(1700000000 * 1000000000ull)
static uint64_t dbl_mono = DBL_MONO_START, dbl_real = DBL_REAL_START;
void dbl_sleep(uint64_t ns);

/*
 * Become root, as the writer needs (its segment is root's) and as state.c
 * needs (it believes only root's files): when not root, in a user
 * namespace of our own, as uid and gid 0. 0, or -1 with the reason.
 */
int dbl_as_root(char *why, size_t whylen);

/*
 * Start the daemon's upper half as daemon_main() does, on the segment
 * /dev/shm/SHMNAME with the state file STATEPATH, not yet restored, and
 * MAX sessions at most; a session that names no interface gets "dbl0".
 * 0, or -1 with the reason in ERR.
 */
int dbl_start(const char *shmname, unsigned max, const char *statepath,
    char *err, size_t errlen);
/*
 * Answer every compile, stop every session (the state file keeps them)
 * and end as daemon_main() does after its loop; the loop forgets the
 * modules, as a new process's would.
 */
void dbl_stop(void);

/* One turn of the loop: each module's share of it, then what ended is freed. */
void dbl_turn(void);
/* Is every compile answered, and every path's failure heard? */
bool dbl_quiet(void);
/* Turns until it is. */
void dbl_settle(void);

/* The daemon's messages since the last dbl_log_clear(), and a search in them. */
const char *dbl_log_text(void);
bool dbl_logged(const char *needle);
void dbl_log_clear(void);

/*
 * The doubles' behaviour, set by a test. compile_start() fails for want
 * of memory while dbl_compile_nomem is set. kpath_available() says no,
 * with this reason, while dbl_kernel_missing is not empty. Interfaces
 * named nosuch* do not exist; on flaky*, libpcap's capture fails at
 * open and the kernel's right after, with a message full of control
 * bytes. The kernel path refuses a program that computes (a BPF_ALU
 * instruction, as `ip[0] & 0xf != 5` compiles to).
 */
static bool dbl_compile_nomem;
static char dbl_kernel_missing[128];
#define DBL_FLAKY_ERROR	"capture socket:\tNetwork is down\r\n\x7f\x1b[0m"

/* Paths opened and not closed, by every session. */
static int dbl_paths_open;

/* ---- the clock: every module included below reads these */

#define now_mono dbl_now_mono
#define now_real dbl_now_real

static inline uint64_t
dbl_now_mono(void)
{
	return dbl_mono;
}

static inline uint64_t
dbl_now_real(void)
{
	return dbl_real;
}

void
dbl_sleep(uint64_t ns)
{
	dbl_mono += ns;
	dbl_real += ns;
}

/* ---- log.c, writing into a buffer */

static char *dbl_logbuf;
static size_t dbl_loglen;
static FILE *dbl_logf;

static FILE *
dbl_log_file(void)
{
	if (dbl_logf == NULL &&
	    (dbl_logf = open_memstream(&dbl_logbuf, &dbl_loglen)) == NULL)
		return stderr;
	return dbl_logf;
}

/*
 * One file holds the modules here, and their statics meet: log.c's "last"
 * is renamed, as loop.c has a local of that name, and state.c's "path"
 * below, for ctl.c's.
 */
#undef stderr
#define stderr (dbl_log_file())
#define last log_last
#include "../../daemon/log.c"
#undef last
#undef stderr
#define stderr stderr

const char *
dbl_log_text(void)
{
	fflush(dbl_log_file());
	return dbl_logbuf != NULL ? dbl_logbuf : "";
}

bool
dbl_logged(const char *needle)
{
	return strstr(dbl_log_text(), needle) != NULL;
}

/* A message repeated from before the clear is written again. */
void
dbl_log_clear(void)
{
	if (dbl_logf != NULL)
		fclose(dbl_logf);
	free(dbl_logbuf);
	dbl_logf = NULL;
	dbl_logbuf = NULL;
	dbl_loglen = 0;
	memset(&log_last, 0, sizeof(log_last));
}

/* ---- the modules below the doubles */

#include "../../daemon/proto.c"
#include "../../daemon/config.c"
#include "../../daemon/loop.c"
#include "../../daemon/reply.c"
#include "../../daemon/iface.c"
#include "../../shm/writer.c"
#include "../../shm/reader.c"	/* sess.c names states with it; tests read with it */

/* ---- compile.c */

struct compile_job {
	TAILQ_ENTRY(compile_job) entry;
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	char			*filter;
	bool			 dead_ok;
	compile_fn		*done;
	void			*arg;
	unsigned		 turn;	/* the turn it was queued in */
};

static TAILQ_HEAD(, compile_job) dbl_jobs = TAILQ_HEAD_INITIALIZER(dbl_jobs);
static unsigned dbl_turns;

struct compile_job *
compile_start(const char *iface, const char *filter, bool dead_ok,
    compile_fn *done, void *arg)
{
	struct compile_job *j;

	if (dbl_compile_nomem || (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	if ((j->filter = strdup(filter)) == NULL) {
		free(j);
		return NULL;
	}
	strlcpy(j->iface, iface, sizeof(j->iface));
	j->dead_ok = dead_ok;
	j->done = done;
	j->arg = arg;
	j->turn = dbl_turns;
	TAILQ_INSERT_TAIL(&dbl_jobs, j, entry);
	return j;
}

void
compile_cancel(struct compile_job *j)
{
	TAILQ_REMOVE(&dbl_jobs, j, entry);
	free(j->filter);
	free(j);
}

void
compile_shutdown(void)
{
	while (!TAILQ_EMPTY(&dbl_jobs))
		compile_cancel(TAILQ_FIRST(&dbl_jobs));
}

/* What compile.c's child would say about J, to J's caller. */
static void
dbl_compile(struct compile_job *j)
{
	struct compiled c = { .status = CTL_OK, .dlt = DLT_EN10MB };
	struct bpf_program prog;
	pcap_t *p = NULL;

	if (!j->dead_ok && strncmp(j->iface, "nosuch", 6) == 0) {
		c.status = CTL_BADIFACE;
		c.dlt = -1;
		snprintf(c.err, sizeof(c.err), "%s: no such interface", j->iface);
	} else if ((p = pcap_open_dead(DLT_EN10MB, 128)) == NULL) {
		c.status = CTL_NOMEM;
		snprintf(c.err, sizeof(c.err), "out of memory");
	} else if (pcap_compile(p, &prog, j->filter, 1,
	    PCAP_NETMASK_UNKNOWN) == -1) {
		c.status = CTL_BADFILTER;
		snprintf(c.err, sizeof(c.err), "filter '%.120s': %s", j->filter,
		    pcap_geterr(p));
	} else if (prog.bf_len > BPF_MAXINSNS) {
		c.status = CTL_BADFILTER;
		snprintf(c.err, sizeof(c.err), "filter '%.100s' compiles to %u "
		    "instructions; the kernel takes at most %d", j->filter,
		    prog.bf_len, BPF_MAXINSNS);
		pcap_freecode(&prog);
	} else
		c.prog = &prog;
	j->done(j->arg, &c);
	if (c.prog != NULL)
		pcap_freecode(&prog);
	if (p != NULL)
		pcap_close(p);
}

/* Answer the compiles queued before this turn; later ones wait for the next. */
static void
dbl_compile_turn(void)
{
	struct compile_job *j;

	while ((j = TAILQ_FIRST(&dbl_jobs)) != NULL && j->turn < dbl_turns) {
		TAILQ_REMOVE(&dbl_jobs, j, entry);
		dbl_compile(j);
		free(j->filter);
		free(j);
	}
}

static struct loop_work dbl_compile_work = { .turn = dbl_compile_turn };

void
compile_init(void)
{
	loop_register(&dbl_compile_work);
}

/* ---- pcap.c and kpath.c */

static TAILQ_HEAD(, tally) dbl_news = TAILQ_HEAD_INITIALIZER(dbl_news);

static bool
dbl_flaky(const struct tally *t, char *err, size_t errlen)
{
	if (strncmp(t->iface, "flaky", 5) != 0)
		return false;
	snprintf(err, errlen, "%s: %s", t->iface, DBL_FLAKY_ERROR);
	return true;
}

static enum ctl_status
dbl_pcap_open(struct tally *t, const struct bpf_program *prog, int dlt,
    char *err, size_t errlen)
{
	(void)prog;
	(void)dlt;
	if (dbl_flaky(t, err, errlen))
		return CTL_BADIFACE;
	dbl_paths_open++;
	return CTL_OK;
}

static enum ctl_status
dbl_pcap_refilter(struct tally *t, const struct bpf_program *prog, int dlt,
    char *err, size_t errlen)
{
	(void)t;
	(void)prog;
	(void)dlt;
	(void)err;
	(void)errlen;
	return CTL_OK;
}

static int
dbl_collect(struct tally *t, int budget, char *err, size_t errlen)
{
	(void)t;
	(void)budget;
	(void)err;
	(void)errlen;
	return 0;
}

static void
dbl_stats(struct tally *t)
{
	(void)t;
}

static void
dbl_close(struct tally *t)
{
	if (t->in_news)
		TAILQ_REMOVE(&dbl_news, t, news);
	t->in_news = false;
	dbl_paths_open--;
}

const struct path_ops pcap_path = {
	.name = "pcap",
	.open = dbl_pcap_open,
	.refilter = dbl_pcap_refilter,
	.collect = dbl_collect,
	.stats = dbl_stats,
	.close = dbl_close,
};

/* The kernel path's refusal of PROG: CTL_OK, or CTL_BADFILTER and why. */
static enum ctl_status
dbl_kernel_check(const struct bpf_program *prog, char *err, size_t errlen)
{
	unsigned i;

	for (i = 0; i < prog->bf_len; i++)
		if (BPF_CLASS(prog->bf_insns[i].code) == BPF_ALU) {
			snprintf(err, errlen, "instruction %u (code %#x, k %#x): "
			    "arithmetic is not counted here", i,
			    prog->bf_insns[i].code, prog->bf_insns[i].k);
			return CTL_BADFILTER;
		}
	return CTL_OK;
}

static enum ctl_status
dbl_kernel_open(struct tally *t, const struct bpf_program *prog, int dlt,
    char *err, size_t errlen)
{
	enum ctl_status st;

	(void)dlt;
	if ((st = dbl_kernel_check(prog, err, errlen)) != CTL_OK)
		return st;
	/* Its socket fails at once: the session hears it on the next turn. */
	if (dbl_flaky(t, t->failed, sizeof(t->failed))) {
		TAILQ_INSERT_TAIL(&dbl_news, t, news);
		t->in_news = true;
	}
	dbl_paths_open++;
	return CTL_OK;
}

static enum ctl_status
dbl_kernel_refilter(struct tally *t, const struct bpf_program *prog, int dlt,
    char *err, size_t errlen)
{
	(void)t;
	(void)dlt;
	return dbl_kernel_check(prog, err, errlen);
}

const struct path_ops kernel_path = {
	.name = "kernel",
	.open = dbl_kernel_open,
	.refilter = dbl_kernel_refilter,
	.collect = dbl_collect,
	.stats = dbl_stats,
	.close = dbl_close,
};

bool
kpath_available(char *why, size_t whylen)
{
	if (dbl_kernel_missing[0] == '\0')
		return true;
	strlcpy(why, dbl_kernel_missing, whylen);
	return false;
}

void
kpath_fold(void)
{
}

struct tally *
kpath_news(void)
{
	struct tally *t;

	if ((t = TAILQ_FIRST(&dbl_news)) != NULL) {
		TAILQ_REMOVE(&dbl_news, t, news);
		t->in_news = false;
	}
	return t;
}

void
kpath_shutdown(void)
{
}

/* ---- the modules above the doubles */

#include "../../daemon/sess.c"
#define path state_path
#include "../../daemon/state.c"
#undef path
#include "../../daemon/cmd.c"

/* ---- what the tests use */

static int
dbl_write(const char *file, const char *text)
{
	ssize_t n = -1;
	int fd;

	if ((fd = open(file, O_WRONLY | O_CLOEXEC)) != -1) {
		n = write(fd, text, strlen(text));
		close(fd);
	}
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

int
dbl_as_root(char *why, size_t whylen)
{
	char uidmap[32], gidmap[32];
	uid_t uid = geteuid();
	gid_t gid = getegid();

	if (uid == 0)
		return 0;
	snprintf(uidmap, sizeof(uidmap), "0 %u 1", (unsigned)uid);
	snprintf(gidmap, sizeof(gidmap), "0 %u 1", (unsigned)gid);
	if (unshare(CLONE_NEWUSER) == -1) {
		snprintf(why, whylen, "not root, and no user namespace: "
		    "unshare: %s", strerror(errno));
		return -1;
	}
	if (dbl_write("/proc/self/setgroups", "deny") == -1 ||
	    dbl_write("/proc/self/uid_map", uidmap) == -1 ||
	    dbl_write("/proc/self/gid_map", gidmap) == -1) {
		snprintf(why, whylen, "not root, and the user namespace's "
		    "maps cannot be written: %s", strerror(errno));
		return -1;
	}
	return geteuid() == 0 ? 0 : -1;
}

int
dbl_start(const char *shmname, unsigned max, const char *statepath,
    char *err, size_t errlen)
{
	cfg.default_iface = "dbl0";
	cfg.max_sessions = max;
	if (sess_init(shmname, max, err, errlen) == -1)
		return -1;
	compile_init();
	state_init(statepath);
	return 0;
}

void
dbl_stop(void)
{
	dbl_settle();
	while (!TAILQ_EMPTY(&sessions))
		sess_stop(TAILQ_FIRST(&sessions));
	sess_shutdown();
	compile_shutdown();
	loop_end();
	SLIST_INIT(&works);
}

void
dbl_turn(void)
{
	dbl_turns++;
	loop_turn();
	loop_bury();
}

bool
dbl_quiet(void)
{
	return TAILQ_EMPTY(&dbl_jobs) && TAILQ_EMPTY(&dbl_news);
}

void
dbl_settle(void)
{
	while (!dbl_quiet())
		dbl_turn();
}
