/*
 * test_seqlock_stress.c: the torn-read stress test of the real writer and
 * reader on a real segment. A writer thread publishes counters that agree
 * with each other and with their session id, and restarts sessions under
 * new ids; reader threads and a forked reader process check every snapshot
 * they accept. Built with CAPSTATS_TEST_BROKEN_READER it must see tearing.
 * Usage: test_seqlock_stress [SECONDS]   (default 3)
 */
#include "../../shm/writer.c"
#include "../../shm/reader.c"

#include <sys/wait.h>

#include <pthread.h>
#include <signal.h>

#include "check.h"

#define NSESS		2	/* sessions, in as many slots: all reused */
#define NREADERS	2	/* reader threads; plus one process */
#define NROUNDS		32	/* reads of each ref between scans */
#define CHURN_EVERY	1024	/* publish rounds between restarts */
#define MAGIC		0x5a3c96f00f693ca5ull
#define MIN_ACCEPTED	10000	/* per reader, to have really run */

#ifdef CAPSTATS_TEST_BROKEN_READER
#define BROKEN		1
#else
#define BROKEN		0
#endif

struct rstats {
	uint64_t	accepted;
	uint64_t	retries;	/* failed attempts inside the reader */
	uint64_t	busy;
	uint64_t	gone;
	uint64_t	scans;
	uint64_t	violations;
};

struct wstats {
	uint64_t	publishes;
	uint64_t	restarts;
	uint64_t	errors;
};

static char shmname[64];
static uint64_t deadline;
static atomic_bool stop_writer;


/* Per session: a torn snapshot would mix two of these, or two sessions. */
static uint64_t
K(uint64_t id)
{
	return id * 0x9e3779b97f4a7c15ull;	/* odd: one K per id */
}

static struct shmw_counts
expect(uint64_t id, uint64_t p, uint32_t state)
{
	struct shmw_counts c = {
		.packets = p, .bytes = p * K(id), .drops = p ^ MAGIC,
		.if_drops = ~p + id, .last_packet_ns = p * 1000 + id,
		.state = state, .mode = (uint32_t)(id & 1),
	};

	return c;
}

/* Does S belong, whole, to session ID at or after packet count *LAST? */
static bool
snapshot_ok(const struct capstats_snapshot *s, uint64_t id, uint64_t *last)
{
	struct shmw_counts c = expect(id, s->packets, s->state);

	if (s->session_id != id || s->packets < *last || s->update_ns == 0 ||
	    s->mode != c.mode || (s->state != CAPSTATS_RUNNING &&
	    s->state != CAPSTATS_STOPPED))
		return false;
	if (s->packets == 0)	/* as shmw_start() left it */
		c = (struct shmw_counts){ 0 };
	if (s->bytes != c.bytes || s->drops != c.drops ||
	    s->if_drops != c.if_drops || s->last_packet_ns != c.last_packet_ns)
		return false;
	*last = s->packets;
	return true;
}

/* Does a description agree with its own session id and slot? */
static bool
info_ok(const struct capstats_info *in)
{
	char name[32], iface[16], filter[64];

	snprintf(name, sizeof(name), "s%" PRIu32, in->slot);
	snprintf(iface, sizeof(iface), "eth%" PRIu32, in->slot);
	snprintf(filter, sizeof(filter), "id %" PRIu64, in->session_id);
	return strcmp(in->name, name) == 0 && strcmp(in->iface, iface) == 0 &&
	    strcmp(in->filter, filter) == 0 &&
	    in->mode == (uint32_t)(in->session_id & 1);
}

static void
violation(struct rstats *st, const char *what, uint64_t id,
    const struct capstats_snapshot *s)
{
	if (st->violations++ < 3)
		fprintf(stderr, "violation (%s): ref id %" PRIu64 ": id %"
		    PRIu64 " packets %" PRIu64 " bytes %" PRIu64 " drops %"
		    PRIu64 " state %" PRIu32 "\n", what, id, s->session_id,
		    s->packets, s->bytes, s->drops, s->state);
}

/* One directory scan: the refs of every running session. */
static size_t
scan(struct capstats *h, struct rstats *st, struct capstats_ref *refs)
{
	struct capstats_ref ref = { .slot = UINT32_MAX };
	struct capstats_snapshot none = { 0 };
	struct capstats_info in;
	size_t n = 0;
	int rc;

	while ((rc = capstats_next(h, &ref, &in)) != CAPSTATS_E_NOSESSION) {
		if (rc == CAPSTATS_E_BUSY) {
			st->busy++;
			continue;
		}
		if (rc != CAPSTATS_OK || !info_ok(&in) || n == NSESS) {
			none.session_id = in.session_id;
			violation(st, "description", ref.session_id, &none);
			continue;
		}
		refs[n++] = ref;
	}
	st->scans++;
	return n;
}

static void
read_one(struct capstats *h, struct rstats *st, struct capstats_ref *ref,
    uint64_t *last)
{
	struct capstats_snapshot s;
	int rc;

	rc = capstats_read(h, ref, &s);
	if (rc == CAPSTATS_OK) {
		st->accepted++;
		if (!snapshot_ok(&s, ref->session_id, last))
			violation(st, "counters", ref->session_id, &s);
	} else if (rc == CAPSTATS_E_GONE) {
		st->gone++;
		ref->session_id = 0;
	} else if (rc == CAPSTATS_E_BUSY)
		st->busy++;
	else {
		memset(&s, 0, sizeof(s));
		violation(st, capstats_strerror(rc), ref->session_id, &s);
	}
}

/* Scan, read every ref NROUNDS times, again, until the deadline. */
static void
reader_run(struct rstats *st)
{
	struct capstats_ref refs[NSESS];
	uint64_t last[NSESS];
	char err[CAPSTATS_ERRBUF_SIZE];
	struct capstats *h;
	size_t i, n, r;
	int rc;

	if ((h = capstats_open(shmname, &rc, err)) == NULL) {
		fprintf(stderr, "reader: %s\n", err);
		st->violations++;
		return;
	}
	while (now_mono() < deadline) {
		n = scan(h, st, refs);
		memset(last, 0, sizeof(last));
		for (r = 0; r < NROUNDS; r++)
			for (i = 0; i < n; i++)
				if (refs[i].session_id != 0)
					read_one(h, st, &refs[i], &last[i]);
	}
	st->retries = h->retries;
	capstats_close(h);
}

static void *
reader_thread(void *arg)
{
	reader_run(arg);
	return NULL;
}

static uint64_t
start(struct shmw *w, uint32_t slot)
{
	char name[32], iface[16], filter[64];
	uint64_t id = w->next_id;	/* what shmw_start() will assign */
	struct shmw_desc d = {
		.state = CAPSTATS_RUNNING, .mode = (uint32_t)(id & 1),
		.name = name, .iface = iface, .filter = filter,
	};

	snprintf(name, sizeof(name), "s%" PRIu32, slot);
	snprintf(iface, sizeof(iface), "eth%" PRIu32, slot);
	snprintf(filter, sizeof(filter), "id %" PRIu64, id);
	return shmw_start(w, slot, &d);
}

struct wsess {
	uint32_t	slot;
	uint64_t	id;
	uint64_t	p;
};

/* Stop session S and start the next one in its slot, with a new id. */
static void
restart(struct shmw *w, struct wsess *s, uint64_t *fake_now,
    struct wstats *ws)
{
	struct shmw_counts c = expect(s->id, s->p, CAPSTATS_STOPPED);
	uint64_t id;
	int slot;

	shmw_stop(w, s->slot, &c, *fake_now);
	*fake_now += SHMW_REUSE_NS;
	slot = shmw_alloc(w, *fake_now);
	if (slot != (int)s->slot || (id = start(w, s->slot)) <= s->id) {
		ws->errors++;
		return;
	}
	s->id = id;
	s->p = 0;
	ws->restarts++;
}

static void *
writer_thread(void *arg)
{
	struct shmw *w = arg;
	struct wsess sess[NSESS];
	struct wstats *ws = calloc(1, sizeof(*ws));
	struct shmw_counts c;
	uint64_t round, fake_now = 0;
	uint32_t i;

	for (i = 0; i < NSESS; i++) {
		sess[i].slot = i;
		sess[i].p = 0;
		if (ws == NULL || shmw_alloc(w, 0) != (int)i ||
		    (sess[i].id = start(w, i)) == 0)
			return ws;
	}
	for (round = 1; !atomic_load(&stop_writer); round++) {
		for (i = 0; i < NSESS; i++) {
			c = expect(sess[i].id, ++sess[i].p, CAPSTATS_RUNNING);
			shmw_publish(w, sess[i].slot, &c);
		}
		ws->publishes += NSESS;
		if (round % CHURN_EVERY == 0)
			restart(w, &sess[round / CHURN_EVERY % NSESS],
			    &fake_now, ws);
	}
	return ws;
}

/* The reader process: its own mapping of the same file. */
static pid_t
fork_reader(int *rfd)
{
	struct rstats st = { 0 };
	int p[2];
	pid_t pid;

	if (pipe(p) == -1 || (pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		close(p[0]);
		reader_run(&st);
		_exit(write(p[1], &st, sizeof(st)) == sizeof(st) ? 0 : 1);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

/* Stop the reader process longer than many reuse cycles, then resume it. */
static void
freeze(pid_t pid, uint64_t run_ns)
{
	check_nap(run_ns / 3);
	kill(pid, SIGSTOP);
	check_nap(run_ns / 6);
	kill(pid, SIGCONT);
}

static void
report(const char *who, const struct rstats *st)
{
	printf("  %-9s accepted %10" PRIu64 "  retries %9" PRIu64
	    "  busy %4" PRIu64 "  gone %7" PRIu64 "  scans %8" PRIu64
	    "  violations %" PRIu64 "\n", who, st->accepted, st->retries,
	    st->busy, st->gone, st->scans, st->violations);
}

/* Did every reader run, see sessions go, and (not) see tearing? */
static int
verdict(const struct rstats *st, int n, const struct wstats *ws)
{
	uint64_t acc = 0, ret = 0, vio = 0;
	bool ran = true;
	int i;

	for (i = 0; i < n; i++) {
		acc += st[i].accepted;
		ret += st[i].retries;
		vio += st[i].violations;
		ran = ran && st[i].accepted >= MIN_ACCEPTED && st[i].gone > 0;
	}
	printf("  total     accepted %10" PRIu64 "  retries %9" PRIu64
	    "  violations %" PRIu64 "\n", acc, ret, vio);
	if (ws == NULL || ws->errors != 0 || ws->restarts == 0) {
		printf("FAIL: the writer could not restart sessions\n");
		return 1;
	}
	if (BROKEN) {
		printf("%s: the broken reader %s torn snapshots\n",
		    vio > 0 ? "PASS" : "FAIL", vio > 0 ? "accepted" :
		    "was never caught accepting");
		return vio > 0 ? 0 : 1;
	}
	if (vio != 0)
		printf("FAIL: %" PRIu64 " torn or misattributed snapshots "
		    "accepted\n", vio);
	else if (!ran)
		printf("FAIL: a reader read too little or saw no restart\n");
	else
		printf("PASS: no torn or misattributed snapshot accepted\n");
	return ran && vio == 0 ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	struct rstats st[NREADERS + 1];
	pthread_t rt[NREADERS], wt;
	char err[256], name[16];
	struct wstats *ws = NULL;
	uint64_t run_ns = 3 * SEC;
	struct shmw *w;
	int i, rfd = -1, status = -1;
	pid_t pid;

	if (argc > 1 && strtod(argv[1], NULL) > 0)
		run_ns = (uint64_t)(strtod(argv[1], NULL) * SEC);
	snprintf(shmname, sizeof(shmname), "capstats-test-%ld-stress",
	    (long)getpid());
	if ((w = shmw_create(shmname, 0, NSESS, SEC, err, sizeof(err))) ==
	    NULL) {
		fprintf(stderr, "shmw_create: %s\n", err);
		return 1;
	}
	memset(st, 0, sizeof(st));
	deadline = now_mono() + run_ns;
	if ((pid = fork_reader(&rfd)) == -1) {
		perror("fork");
		shmw_destroy(w);
		return 1;
	}
	pthread_create(&wt, NULL, writer_thread, w);
	for (i = 0; i < NREADERS; i++)
		pthread_create(&rt[i], NULL, reader_thread, &st[i]);
	freeze(pid, run_ns);
	for (i = 0; i < NREADERS; i++)
		pthread_join(rt[i], NULL);
	if (read(rfd, &st[NREADERS], sizeof(st[0])) != sizeof(st[0]))
		st[NREADERS].violations++;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		st[NREADERS].violations++;
	atomic_store(&stop_writer, true);
	pthread_join(wt, (void **)&ws);
	shmw_destroy(w);

	printf("test_seqlock_stress: %.1f s, %s reader, %d threads + 1 "
	    "process\n", (double)run_ns / SEC, BROKEN ? "BROKEN" : "correct",
	    NREADERS);
	if (ws != NULL)
		printf("  writer    publishes %" PRIu64 "  restarts %" PRIu64
		    "  errors %" PRIu64 "\n", ws->publishes, ws->restarts,
		    ws->errors);
	for (i = 0; i < NREADERS; i++) {
		snprintf(name, sizeof(name), "thread %d", i);
		report(name, &st[i]);
	}
	report("process", &st[NREADERS]);
	i = verdict(st, NREADERS + 1, ws);
	free(ws);
	return i;
}
