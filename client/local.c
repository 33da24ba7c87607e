/*
 * local.c: poll, watch and metrics, answered from the segment alone,
 * without a word to the daemon's socket.
 */
#include <err.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "clock.h"

#define RESTORE_PATIENCE_NS	10000000000ull	/* for a session to come back */

/* How old a heartbeat may be: the rule of capstats-shm(7), in capstats.h. */
static uint64_t
stale_ns(const struct capstats_daemon *d)
{
	uint64_t ns = CAPSTATS_STALE_BEATS * d->heartbeat_interval_ns;

	return ns > CAPSTATS_STALE_MIN_NS ? ns : CAPSTATS_STALE_MIN_NS;
}

/* Map the segment and make sure its daemon is alive; NULL after saying why. */
static struct capstats *
attach(const struct options *o, struct capstats_daemon *d, int quiet)
{
	char err[CAPSTATS_ERRBUF_SIZE];
	struct capstats *cs;
	int rc;

	if ((cs = capstats_open(o->shm, &rc, err)) == NULL) {
		if (!quiet)
			warnx("%s", err);
		return NULL;
	}
	if (capstats_daemon(cs, d) != CAPSTATS_OK ||
	    (rc = capstats_check(cs, stale_ns(d))) != CAPSTATS_OK) {
		if (!quiet)
			warnx("daemon not %s (%s)",
			    rc == CAPSTATS_E_STALE ? "responding" : "running",
			    capstats_errmsg(cs));
		capstats_close(cs);
		return NULL;
	}
	return cs;
}

static int
lookup(struct capstats *cs, const char *name, struct capstats_ref *ref,
    struct capstats_info *info)
{
	int rc;

	if ((rc = capstats_find(cs, name, ref)) == CAPSTATS_OK)
		rc = capstats_info(cs, ref, info);
	return rc;
}

/* poll's object; EXTRA, if not NULL, adds fields before the closing brace. */
static void
poll_json(const struct capstats_info *in, const struct capstats_snapshot *sn,
    uint64_t instance, const char *extra)
{
	fputs("{\"session\": ", stdout);
	json_str(stdout, in->name);
	fputs(", \"interface\": ", stdout);
	json_str(stdout, in->iface);
	printf(", \"state\": \"%s\", \"packets\": %" PRIu64 ", \"bytes\": %"
	    PRIu64 ", \"drops\": %" PRIu64 ", \"if_drops\": %" PRIu64
	    ", \"last_packet\": ", capstats_state_name(sn->state),
	    sn->packets, sn->bytes, sn->drops, sn->if_drops);
	if (sn->last_packet_ns == 0)
		fputs("null", stdout);
	else
		printf("%" PRIu64, sn->last_packet_ns);
	printf(", \"session_id\": %" PRIu64 ", \"instance\": \"%016" PRIx64
	    "\"%s}\n", sn->session_id, instance, extra ? extra : "");
}

int
local_poll(const struct options *o, const char *name)
{
	struct capstats_snapshot sn;
	struct capstats_info info;
	struct capstats_daemon d;
	struct capstats_ref ref;
	struct capstats *cs;
	char p[32], b[32], dr[32];
	int rc;

	if ((cs = attach(o, &d, 0)) == NULL)
		return EXIT_REFUSED;
	if ((rc = lookup(cs, name, &ref, &info)) == CAPSTATS_OK)
		rc = capstats_read(cs, &ref, &sn);
	if (rc != CAPSTATS_OK) {
		if (rc == CAPSTATS_E_NOSESSION || rc == CAPSTATS_E_GONE)
			warnx("no session named %s", name);
		else
			warnx("%s: %s", name,
			    capstats_errmsg(cs));
		capstats_close(cs);
		return EXIT_REFUSED;
	}
	if (o->json)
		poll_json(&info, &sn, d.instance_id, NULL);
	else {
		fmt_count(p, sizeof(p), sn.packets, o->units);
		fmt_count(b, sizeof(b), sn.bytes, o->units);
		fmt_count(dr, sizeof(dr), sn.drops, o->units);
		printf("%s: %s packets, %s bytes, %s drops", name, p, b, dr);
		/* The error text goes with the state shown, the counters'. */
		if (sn.state == CAPSTATS_ERROR && info.error[0] != '\0')
			printf(" (%s: %s)", capstats_state_name(sn.state),
			    info.error);
		else if (sn.state != CAPSTATS_RUNNING)
			printf(" (%s)", capstats_state_name(sn.state));
		putchar('\n');
	}
	capstats_close(cs);
	return 0;
}

/* watch: one line per interval, with the rates since the previous one. */

struct watch {
	const struct options	*o;
	const char		*name;
	struct capstats		*cs;
	struct capstats_ref	 ref;
	struct capstats_info	 info;
	uint64_t		 instance;
	uint64_t		 stale_ns;
	int			 have_prev;
	struct capstats_snapshot prev;
	uint64_t		 prev_ns;
	int			 lost;	/* the daemon is gone; we said so */
	int			 stale;	/* its heartbeat stopped; we said so */
	uint64_t		 missing_since;	/* the session, after a restart */
};

static void
watch_header(const struct watch *w)
{
	if (!w->o->json)
		printf("%-18s %14s %16s %10s %12s %14s\n", "TIME", "PACKETS",
		    "BYTES", "DROPS", "PKT/S", "BIT/S");
}

static void
watch_line(struct watch *w, const struct capstats_snapshot *sn, uint64_t now)
{
	double dt, pps = -1, bps = -1;
	char t[128], p[32], b[32], dr[32], pr[32], br[32];
	uint64_t real = now_real();

	if (w->have_prev && now > w->prev_ns) {
		dt = (double)(now - w->prev_ns) / 1e9;
		pps = (double)(sn->packets - w->prev.packets) / dt;
		bps = (double)(sn->bytes - w->prev.bytes) * 8 / dt;
	}
	if (w->o->json) {
		if (pps < 0)
			snprintf(t, sizeof(t), ", \"time\": %" PRIu64
			    ", \"pps\": null, \"bps\": null", real);
		else
			snprintf(t, sizeof(t), ", \"time\": %" PRIu64
			    ", \"pps\": %.3f, \"bps\": %.3f", real, pps, bps);
		poll_json(&w->info, sn, w->instance, t);
	} else {
		fmt_time(t, sizeof(t), real);
		fmt_count(p, sizeof(p), sn->packets, w->o->units);
		fmt_count(b, sizeof(b), sn->bytes, w->o->units);
		fmt_count(dr, sizeof(dr), sn->drops, w->o->units);
		fmt_rate(pr, sizeof(pr), pps, w->o->units);
		fmt_rate(br, sizeof(br), bps, w->o->units);
		printf("%-18.12s %14s %16s %10s %12s %14s%s\n", t + 11, p, b, dr,
		    pr, br, sn->state == CAPSTATS_ERROR ? "  (error)" : "");
	}
	fflush(stdout);
	w->prev = *sn;
	w->prev_ns = now;
	w->have_prev = 1;
}

/* (Re)attach after a restart; 0 when the session is found again. */
static int
watch_attach(struct watch *w)
{
	struct capstats_daemon d;

	if (w->cs != NULL)
		capstats_close(w->cs);
	w->have_prev = 0;
	if ((w->cs = attach(w->o, &d, w->lost)) == NULL) {
		if (!w->lost)
			warnx("waiting for the daemon");
		w->lost = 1;
		return -1;
	}
	w->stale_ns = stale_ns(&d);
	if (lookup(w->cs, w->name, &w->ref, &w->info) != CAPSTATS_OK) {
		if (w->instance == d.instance_id || (w->instance == 0 && !w->lost)) {
			warnx("no session named %s", w->name);
			return 1;
		}
		/* A new daemon restores its sessions just after it starts. */
		if (w->missing_since == 0) {
			w->missing_since = now_mono();
			warnx("daemon restarted; waiting for "
			    "session %s", w->name);
		} else if (now_mono() - w->missing_since > RESTORE_PATIENCE_NS) {
			warnx("session %s did not come back "
			    "after the restart", w->name);
			return 1;
		}
		w->lost = 1;
		return -1;
	}
	w->missing_since = 0;
	if (w->lost || (w->instance != 0 && w->instance != d.instance_id))
		warnx("daemon restarted (instance %016"
		    PRIx64 "); counting starts over", d.instance_id);
	w->instance = d.instance_id;
	w->lost = 0;
	return 0;
}

/*
 * A daemon whose heartbeat stopped may only be slow: say so once and stay
 * attached, printing nothing until it beats again. capstats_check() still
 * sees a restart or a stop meanwhile, by the state and the file.
 */
static int
watch_stale(struct watch *w, int rc)
{
	if (rc == CAPSTATS_E_STALE && !w->stale)
		warnx("daemon not responding (%s)",
		    capstats_errmsg(w->cs));
	else if (rc == CAPSTATS_OK && w->stale)
		warnx("daemon responding again");
	w->stale = rc == CAPSTATS_E_STALE;
	return w->stale;
}

/* One turn: 0 printed, -1 nothing to print now, 1 the session ended. */
static int
watch_turn(struct watch *w)
{
	struct capstats_snapshot sn;
	int rc;

	if (w->cs == NULL || w->lost)
		return watch_attach(w) == 1 ? 1 : -1;
	rc = capstats_check(w->cs, w->stale_ns);
	if (watch_stale(w, rc))
		return -1;
	if (rc == CAPSTATS_E_RESTARTED) {
		warnx("%s", capstats_errmsg(w->cs));
		rc = watch_attach(w);
		return rc == 1 ? 1 : -1;
	}
	rc = capstats_read(w->cs, &w->ref, &sn);
	if (rc == CAPSTATS_E_GONE || (rc == CAPSTATS_OK &&
	    sn.state == CAPSTATS_STOPPED)) {
		warnx("session %s stopped", w->name);
		return 1;
	}
	if (rc != CAPSTATS_OK) {
		warnx("%s: %s", w->name,
		    capstats_errmsg(w->cs));
		return -1;
	}
	watch_line(w, &sn, now_mono());
	return 0;
}

/*
 * Sleep until the tick after *NEXT, on the grid of STEP. Ticks missed while
 * the process was stopped (SIGSTOP) or blocked (a slow terminal) are
 * skipped, not caught up in a burst: the next tick is the next multiple of
 * STEP after now, and a wake-up a whole STEP late goes on to the next one.
 */
static void
watch_sleep(uint64_t *next, uint64_t step)
{
	struct timespec ts;
	uint64_t now;

	do {
		*next += step;
		if ((now = now_mono()) >= *next)
			*next += ((now - *next) / step + 1) * step;
		ts.tv_sec = (time_t)(*next / 1000000000u);
		ts.tv_nsec = (long)(*next % 1000000000u);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
		    NULL) == EINTR)
			;
	} while ((now = now_mono()) >= *next && now - *next >= step);
}

int
local_watch(const struct options *o, const char *name, double seconds,
    long count)
{
	struct watch w = { .o = o, .name = name };
	uint64_t step = (uint64_t)(seconds * 1e9), next;
	long printed = 0;
	int rc;

	if ((rc = watch_attach(&w)) != 0) {
		if (w.cs != NULL)
			capstats_close(w.cs);
		return EXIT_REFUSED;
	}
	watch_header(&w);
	next = now_mono();
	while (count <= 0 || printed < count) {
		rc = watch_turn(&w);
		if (rc == 1)
			break;
		if (rc == 0)
			printed++;
		if (count > 0 && printed >= count)
			break;
		watch_sleep(&next, step);
	}
	if (w.cs != NULL)
		capstats_close(w.cs);
	return rc == 1 ? EXIT_REFUSED : 0;
}

/* metrics: every session in the Prometheus text format. */

static void
prom_label(const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			putchar('\\');
		putchar(*s);
	}
}

struct metric {
	const char	*name, *type, *help;
};

static const struct metric metrics[] = {
	{ "capstats_packets_total", "counter",
	    "Packets accepted by the session's filter." },
	{ "capstats_bytes_total", "counter",
	    "Wire bytes of the packets accepted by the session's filter." },
	{ "capstats_drops_total", "counter",
	    "Packets the kernel dropped for the session's capture." },
	{ "capstats_if_drops_total", "counter",
	    "Packets the interface dropped, as seen by the session." },
	{ "capstats_up", "gauge",
	    "1 if the session is counting, 0 if it is in error." },
};

static uint64_t
metric_value(int m, const struct capstats_snapshot *sn)
{
	switch (m) {
	case 0: return sn->packets;
	case 1: return sn->bytes;
	case 2: return sn->drops;
	case 3: return sn->if_drops;
	default: return sn->state == CAPSTATS_RUNNING;
	}
}

/*
 * The sessions to show: every running or failed one that reads. A slot that
 * cannot be read (a writer stalled in it, a malformed entry) is named on
 * stderr and stepped past, as capstats_next() allows; one whose counters
 * already say STOPPED is ending and left out. Returns how many, in *INFO
 * and *SN.
 */
static size_t
metrics_collect(struct capstats *cs, struct capstats_info **info,
    struct capstats_snapshot **sn)
{
	struct capstats_ref ref = { .slot = UINT32_MAX };
	struct capstats_snapshot s;
	struct capstats_info in;
	size_t n = 0, cap = 0;
	void *p;
	int rc;

	while ((rc = capstats_next(cs, &ref, &in)) != CAPSTATS_E_NOSESSION) {
		if (rc != CAPSTATS_OK) {
			warnx("%s", capstats_errmsg(cs));
			if (rc == CAPSTATS_E_BUSY || rc == CAPSTATS_E_INVALID)
				continue;
			break;
		}
		if (capstats_read(cs, &ref, &s) != CAPSTATS_OK ||
		    s.state == CAPSTATS_STOPPED)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if ((p = realloc(*info, cap * sizeof(**info))) == NULL)
				break;
			*info = p;
			if ((p = realloc(*sn, cap * sizeof(**sn))) == NULL)
				break;
			*sn = p;
		}
		(*info)[n] = in;
		(*sn)[n++] = s;
	}
	return n;
}

int
local_metrics(const struct options *o)
{
	struct capstats_snapshot *sn = NULL;
	struct capstats_info *info = NULL;
	struct capstats_daemon d;
	struct capstats *cs;
	size_t n, i;
	uint64_t now;
	int m;

	if ((cs = attach(o, &d, 0)) == NULL)
		return EXIT_REFUSED;
	n = metrics_collect(cs, &info, &sn);
	for (m = 0; m < (int)(sizeof(metrics) / sizeof(metrics[0])); m++) {
		printf("# HELP %s %s\n# TYPE %s %s\n", metrics[m].name,
		    metrics[m].help, metrics[m].name, metrics[m].type);
		for (i = 0; i < n; i++) {
			printf("%s{session=\"", metrics[m].name);
			prom_label(info[i].name);
			fputs("\",interface=\"", stdout);
			prom_label(info[i].iface);
			printf("\"} %" PRIu64 "\n", metric_value(m, &sn[i]));
		}
	}
	/* Beside a daemon in another time namespace: age 0, not 584 years. */
	now = now_mono();
	printf("# HELP capstats_heartbeat_age_seconds Seconds since the "
	    "daemon's last heartbeat.\n# TYPE capstats_heartbeat_age_seconds "
	    "gauge\ncapstats_heartbeat_age_seconds %.3f\n",
	    now > d.heartbeat_ns ? (double)(now - d.heartbeat_ns) / 1e9 : 0.0);
	free(info);
	free(sn);
	capstats_close(cs);
	return 0;
}
