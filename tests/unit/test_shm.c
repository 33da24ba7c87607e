/*
 * test_shm.c: the writer and the reader together on real files in
 * /dev/shm, and the reader against hostile segments written by hand.
 * Segments are named capstats-test-PID-WHAT; all are removed at the end.
 * Needs root: segments are root's, and one test mounts a tiny tmpfs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE		/* unshare(2) */
#endif

#include "../../shm/writer.c"
#include "../../shm/reader.c"

#include <sys/mount.h>
#include <sys/wait.h>

#include <dirent.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>

#include "check.h"

/* An int result against the one expected, both shown on failure. */
#define CHECK_RC(e, want) do {						\
	int got_ = (e), want_ = (want);					\
	checks++;							\
	if (got_ != want_) {						\
		failures++;						\
		fprintf(stderr, "%s:%d: CHECK failed: %s: got %d (%s),"	\
		    " want %d (%s)\n", __FILE__, __LINE__, #e, got_,	\
		    capstats_strerror(got_), want_,			\
		    capstats_strerror(want_));				\
	}								\
} while (0)

#define HB_NS	(250 * 1000000ull)

static char prefix[64];		/* capstats-test-PID- */

static const char *
tname(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "%s%s", prefix, what);
	return buf;
}

/*
 * Count this run's temporary files (.capstats-test-PID-*) in /dev/shm;
 * with REMOVE, remove them and every segment of this run.
 */
static int
scan(bool remove)
{
	char path[512];
	struct dirent *de;
	DIR *d;
	int tmps = 0;

	if ((d = opendir("/dev/shm")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;

		if (n[0] == '.' && strncmp(n + 1, prefix, strlen(prefix)) == 0)
			tmps++;
		else if (strncmp(n, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "/dev/shm/%s", n);
		if (remove)
			unlink(path);
	}
	closedir(d);
	return tmps;
}

static struct shmw *
mk(const char *name, uint32_t slots)
{
	char err[256] = "";
	struct shmw *w;

	w = shmw_create(name, 0, slots, HB_NS, err, sizeof(err));
	if (w == NULL)
		fprintf(stderr, "shmw_create %s: %s\n", name, err);
	return w;
}

static struct capstats *
op(const char *name, int want)
{
	char errbuf[CAPSTATS_ERRBUF_SIZE] = "";
	struct capstats *h;
	int rc = 12345;

	h = capstats_open(name, &rc, errbuf);
	CHECK_RC(rc, want);
	CHECK((h != NULL) == (want == CAPSTATS_OK));
	CHECK(want == CAPSTATS_OK || errbuf[0] != '\0');
	if (rc != want)
		fprintf(stderr, "  open %s: %s\n", name, errbuf);
	return h;
}

/* A refused open whose message says WHY. */
static void
refused(const char *name, int want, const char *why)
{
	char errbuf[CAPSTATS_ERRBUF_SIZE] = "";
	int rc = 12345;

	CHECK(capstats_open(name, &rc, errbuf) == NULL);
	CHECK_RC(rc, want);
	CHECK(strstr(errbuf, why) != NULL);
	if (strstr(errbuf, why) == NULL)
		fprintf(stderr, "  open %s: \"%s\", want \"%s\"\n", name,
		    errbuf, why);
}

static uint64_t
start(struct shmw *w, uint32_t slot, const char *name, uint32_t state)
{
	struct shmw_desc d = {
		.state = state, .mode = CAPSTATS_MODE_PCAP,
		.created_ns = 111, .modified_ns = 111,
		.name = name, .iface = "eth0", .filter = "tcp port 80",
	};

	return shmw_start(w, slot, &d);
}

static struct shmw_counts
counts(uint64_t n)
{
	struct shmw_counts c = {
		.packets = n, .bytes = n * 100, .drops = n + 1,
		.if_drops = n + 2, .last_packet_ns = n + 3,
		.state = CAPSTATS_RUNNING, .mode = CAPSTATS_MODE_KERNEL,
	};

	return c;
}

static uint64_t
dir_seq(struct capstats *h)
{
	struct capstats_daemon d;

	capstats_daemon(h, &d);
	return d.dir_seq;
}

static void
test_names(void)
{
	static const char *bad[] = { "", "/", ".", "..", "/..", "a/b",
	    "/a/b", "//x", "a/" };
	char err[256], big[256], n[128], path[256];
	struct capstats *h;
	struct shmw *w;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		CHECK(shmw_create(bad[i], 0, 4, HB_NS, err, sizeof(err)) ==
		    NULL);
		CHECK(strstr(err, "bad shared memory name") != NULL);
		CHECK(op(bad[i], CAPSTATS_E_INVALID) == NULL);
	}
	memset(big, 'x', sizeof(big));
	big[201] = '\0';
	CHECK(shmw_create(big, 0, 4, HB_NS, err, sizeof(err)) == NULL);
	CHECK(op(big, CAPSTATS_E_INVALID) == NULL);
	CHECK(shmw_create(NULL, 0, 4, HB_NS, err, sizeof(err)) == NULL);
	CHECK(shmw_create(tname(n, sizeof(n), "slots"), 0, 0, HB_NS, err,
	    sizeof(err)) == NULL);
	CHECK(shmw_create(n, 0, CS_SLOTS_MAX + 1, HB_NS, err,
	    sizeof(err)) == NULL);
	CHECK(strstr(err, "slots") != NULL);

	/* A leading slash is the shm_open(3) spelling of the same name. */
	snprintf(big, sizeof(big), "/%s", tname(n, sizeof(n), "slash"));
	w = mk(big, 1);
	CHECK(w != NULL);
	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	CHECK(access(path, F_OK) == 0);
	h = op(big, CAPSTATS_OK);
	capstats_close(h);
	/* NULL means $CAPSTATS_SHM. */
	setenv("CAPSTATS_SHM", n, 1);
	h = op(NULL, CAPSTATS_OK);
	CHECK(h != NULL && strcmp(h->path, path) == 0);
	capstats_close(h);
	unsetenv("CAPSTATS_SHM");
	shmw_destroy(w);
	CHECK(access(path, F_OK) == -1 && errno == ENOENT);
}

static void
test_create_file(const char *n, mode_t mask)
{
	char path[256];
	struct stat st;
	struct shmw *w;
	char err[256] = "";
	mode_t old;

	old = umask(mask);
	w = shmw_create(n, 4242, 4, HB_NS, err, sizeof(err));
	umask(old);
	CHECK(w != NULL);
	if (w == NULL)
		return;
	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	CHECK(lstat(path, &st) == 0);
	CHECK(S_ISREG(st.st_mode));
	CHECK((st.st_mode & 07777) == 0640);
	CHECK(st.st_uid == 0 && st.st_gid == 4242 && st.st_nlink == 1);
	CHECK((size_t)st.st_size == w->size);
	CHECK(st.st_size == 4096 * 3);
	CHECK(scan(false) == 0);	/* no temporary file left behind */
	shmw_destroy(w);
}

static void
test_create(void)
{
	struct capstats_daemon d;
	const struct cs_field *f;
	struct capstats *h;
	struct shmw *w, *w2;
	uint64_t t0 = now_mono();
	char n[128];

	test_create_file(tname(n, sizeof(n), "umask0"), 0);
	test_create_file(tname(n, sizeof(n), "umask777"), 0777);

	w = mk(tname(n, sizeof(n), "create"), 4);
	h = op(n, CAPSTATS_OK);
	CHECK(w != NULL && h != NULL);
	if (w == NULL || h == NULL)
		return;
	CHECK(shmw_slots(w) == 4);
	CHECK_RC(capstats_daemon(h, &d), CAPSTATS_OK);
	CHECK(d.instance_id != 0 && d.instance_id == shmw_instance(w));
	CHECK(d.pid == (uint32_t)getpid());
	CHECK(d.state == CAPSTATS_SEG_READY);
	CHECK(d.slot_count == 4 && d.active_count == 0);
	CHECK(d.heartbeat_interval_ns == HB_NS);
	CHECK(d.heartbeat_count == 1);
	CHECK(d.heartbeat_ns >= t0 && d.heartbeat_ns <= now_mono());
	CHECK(d.dir_seq == 0);
	CHECK(d.start_realtime_ns > 1600000000 * SEC);

	/* R8: the segment describes its counter fields. */
	CHECK(rd_hdr(h)->field_count == 8);
	f = (const void *)(h->base + rd_hdr(h)->field_offset);
	CHECK(strcmp(f[0].name, "packets") == 0 && f[0].offset == 16 &&
	    f[0].type == CS_TYPE_U64 && f[0].unit == CS_UNIT_PACKETS);
	CHECK(strcmp(f[1].name, "bytes") == 0 && f[1].offset == 24 &&
	    f[1].unit == CS_UNIT_BYTES);
	CHECK(strcmp(f[2].name, "drops") == 0 && f[2].offset == 32);
	CHECK(strcmp(f[3].name, "if_drops") == 0 && f[3].offset == 40);
	CHECK(strcmp(f[4].name, "last_packet_ns") == 0 && f[4].offset == 48 &&
	    f[4].unit == CS_UNIT_NS_REALTIME);
	CHECK(strcmp(f[5].name, "update_ns") == 0 && f[5].offset == 56 &&
	    f[5].unit == CS_UNIT_NS_MONOTONIC);
	CHECK(strcmp(f[6].name, "state") == 0 && f[6].offset == 64 &&
	    f[6].type == CS_TYPE_U32);
	CHECK(strcmp(f[7].name, "mode") == 0 && f[7].offset == 68 &&
	    f[7].type == CS_TYPE_U32);

	/* Instance ids differ from one creation to the next. */
	w2 = mk(tname(n, sizeof(n), "create2"), 1);
	CHECK(w2 != NULL && shmw_instance(w2) != shmw_instance(w));
	shmw_destroy(w2);
	capstats_close(h);
	shmw_destroy(w);
}

static void
test_alloc(void)
{
	struct capstats *h;
	struct shmw *w;
	char n[128];

	w = mk(tname(n, sizeof(n), "alloc"), 3);
	h = op(n, CAPSTATS_OK);
	if (w == NULL || h == NULL)
		return;
	CHECK(shmw_alloc(w, 0) == 0);
	CHECK(shmw_alloc(w, 0) == 1);	/* 0 is taken, not yet started */
	shmw_release(w, 1);
	CHECK(shmw_alloc(w, 0) == 1);
	CHECK(start(w, 0, "a", CAPSTATS_RUNNING) == 1);
	CHECK(start(w, 0, "again", CAPSTATS_RUNNING) == 0);	/* active */
	CHECK(start(w, 7, "nowhere", CAPSTATS_RUNNING) == 0);
	shmw_release(w, 0);		/* started: nothing to undo */
	CHECK(shmw_alloc(w, 0) == 2);
	CHECK(shmw_alloc(w, 100 * SEC) == -1);	/* full, none stopped */
	CHECK(start(w, 1, "b", CAPSTATS_RUNNING) == 2);
	CHECK(start(w, 2, "c", CAPSTATS_RUNNING) == 3);
	CHECK(rd_high_water(h) == 3);

	/* Stopped entries wait SHMW_REUSE_NS; the oldest goes first. */
	shmw_stop(w, 1, &(struct shmw_counts){ .packets = 1 }, 10 * SEC);
	shmw_stop(w, 0, &(struct shmw_counts){ .packets = 1 }, 11 * SEC);
	CHECK(shmw_alloc(w, 10 * SEC + SHMW_REUSE_NS - 1) == -1);
	CHECK(shmw_alloc(w, 5 * SEC) == -1);	/* clock before the stop */
	CHECK(shmw_alloc(w, 11 * SEC + SHMW_REUSE_NS) == 1);
	CHECK(shmw_alloc(w, 11 * SEC + SHMW_REUSE_NS) == 0);
	CHECK(shmw_alloc(w, 11 * SEC + SHMW_REUSE_NS) == -1);
	shmw_release(w, 0);
	CHECK(shmw_alloc(w, 11 * SEC + SHMW_REUSE_NS) == 0);
	capstats_close(h);
	shmw_destroy(w);

	/* A never used entry beats a stopped one, however old. */
	w = mk(n, 2);
	if (w == NULL)
		return;
	CHECK(shmw_alloc(w, 0) == 0 && start(w, 0, "a", CAPSTATS_RUNNING) == 1);
	shmw_stop(w, 0, &(struct shmw_counts){ .packets = 1 }, 0);
	CHECK(shmw_alloc(w, 1000 * SEC) == 1);
	shmw_destroy(w);
}

static void
check_info(struct capstats *h, const struct capstats_ref *ref,
    const char *name, uint32_t state)
{
	struct capstats_info in;

	memset(&in, 0x55, sizeof(in));
	CHECK_RC(capstats_info(h, ref, &in), CAPSTATS_OK);
	CHECK(in.session_id == ref->session_id && in.slot == ref->slot);
	CHECK(strcmp(in.name, name) == 0);
	CHECK(in.state == state);
}

static void
test_publish(struct shmw *w, struct capstats *h)
{
	struct shmw_counts c = counts(10);
	struct capstats_snapshot s;
	struct capstats_ref web;
	uint64_t t0, t1;

	CHECK_RC(capstats_find(h, "web", &web), CAPSTATS_OK);
	memset(&s, 0x55, sizeof(s));
	CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_OK);
	CHECK(s.session_id == web.session_id && s.packets == 0 &&
	    s.bytes == 0 && s.drops == 0 && s.if_drops == 0 &&
	    s.last_packet_ns == 0 && s.state == CAPSTATS_RUNNING &&
	    s.mode == CAPSTATS_MODE_PCAP);
	t0 = now_mono();
	shmw_publish(w, web.slot, &c);
	t1 = now_mono();
	CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_OK);
	CHECK(s.packets == 10 && s.bytes == 1000 && s.drops == 11 &&
	    s.if_drops == 12 && s.last_packet_ns == 13);
	CHECK(s.state == CAPSTATS_RUNNING && s.mode == CAPSTATS_MODE_KERNEL);
	CHECK(s.update_ns >= t0 && s.update_ns <= t1);
	CHECK(s.session_id == web.session_id);
	/* A publish to a slot out of range or never started is ignored. */
	shmw_publish(w, 99, &c);
	shmw_publish(w, 3, &c);
	CHECK(seq_ld64(&rd_ctr(h, 3)->seq) == 0);
}

static void
test_describe(struct shmw *w, struct capstats *h)
{
	struct shmw_desc d = {
		.state = CAPSTATS_ERROR, .mode = CAPSTATS_MODE_KERNEL,
		.created_ns = 111, .modified_ns = 222, .name = "dns",
		.iface = "eth1", .filter = "udp port 53",
		.error = "eth1: interface went down",
	};
	char longf[400], longn[100];
	struct capstats_info in;
	struct capstats_ref dns;
	uint64_t ds;

	CHECK_RC(capstats_find(h, "dns", &dns), CAPSTATS_OK);
	ds = dir_seq(h);
	shmw_describe(w, dns.slot, &d);
	CHECK(dir_seq(h) == ds + 2);
	CHECK_RC(capstats_info(h, &dns, &in), CAPSTATS_OK);
	CHECK(in.state == CAPSTATS_ERROR && in.mode == CAPSTATS_MODE_KERNEL);
	CHECK(strcmp(in.iface, "eth1") == 0);
	CHECK(strcmp(in.filter, "udp port 53") == 0);
	CHECK(strcmp(in.error, "eth1: interface went down") == 0);
	CHECK(in.created_ns == 111 && in.modified_ns == 222);
	CHECK(in.config_gen == 1 && in.flags == 0);
	/* Same modification time: a state change, not a modify. */
	d.error = NULL;
	shmw_describe(w, dns.slot, &d);
	CHECK_RC(capstats_info(h, &dns, &in), CAPSTATS_OK);
	CHECK(in.config_gen == 1 && in.error[0] == '\0');

	/* Long texts are cut to fit and the filter is flagged. */
	memset(longf, 'f', sizeof(longf) - 1);
	longf[sizeof(longf) - 1] = '\0';
	memset(longn, 'n', sizeof(longn) - 1);
	longn[sizeof(longn) - 1] = '\0';
	d.filter = longf;
	d.modified_ns = 333;
	d.state = CAPSTATS_RUNNING;
	shmw_describe(w, dns.slot, &d);
	CHECK_RC(capstats_info(h, &dns, &in), CAPSTATS_OK);
	CHECK(in.flags == CAPSTATS_F_FILTER_TRUNCATED && in.config_gen == 2);
	CHECK(strlen(in.filter) == CAPSTATS_SHM_FILTER_MAX &&
	    strncmp(in.filter, longf, CAPSTATS_SHM_FILTER_MAX) == 0);
	longf[CAPSTATS_SHM_FILTER_MAX] = '\0';	/* exactly fits */
	d.filter = longf;
	d.name = longn;
	shmw_describe(w, dns.slot, &d);
	CHECK_RC(capstats_info(h, &dns, &in), CAPSTATS_OK);
	CHECK(in.flags == 0 && strcmp(in.filter, longf) == 0);
	CHECK(strlen(in.name) == CAPSTATS_NAME_MAX);
	d.name = "dns";
	d.state = CAPSTATS_ERROR;
	shmw_describe(w, dns.slot, &d);
}

/* Collect the names capstats_next() lists, space separated. */
static void
list_names(struct capstats *h, char *out, size_t len)
{
	struct capstats_ref ref = { .slot = UINT32_MAX };
	struct capstats_info in;
	int rc;

	out[0] = '\0';
	while ((rc = capstats_next(h, &ref, &in)) == CAPSTATS_OK) {
		CHECK(ref.slot == in.slot && ref.session_id == in.session_id);
		CHECK(in.state == CAPSTATS_RUNNING ||
		    in.state == CAPSTATS_ERROR);
		strlcat(out, out[0] == '\0' ? "" : " ", len);
		strlcat(out, in.name, len);
	}
	CHECK_RC(rc, CAPSTATS_E_NOSESSION);
}

static void
test_stop_reuse(struct shmw *w, struct capstats *h)
{
	struct shmw_counts fin = counts(50), late = counts(60);
	struct capstats_ref web, web2, ref;
	struct capstats_snapshot s;
	struct capstats_info in;
	struct capstats_daemon d;
	char names[256];
	uint64_t ds;

	CHECK(shmw_alloc(w, 0) == 3 && start(w, 3, "spare", 1) == 4);
	list_names(h, names, sizeof(names));
	CHECK(strcmp(names, "web dns idle spare") == 0);
	CHECK_RC(capstats_find(h, "web", &web), CAPSTATS_OK);
	ds = dir_seq(h);
	shmw_stop(w, web.slot, &fin, 1000 * SEC);
	CHECK(dir_seq(h) == ds + 2);
	CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_OK);
	CHECK(s.state == CAPSTATS_STOPPED && s.packets == 50 &&
	    s.bytes == 5000);
	check_info(h, &web, "web", CAPSTATS_STOPPED);
	CHECK_RC(capstats_find(h, "web", &ref), CAPSTATS_E_NOSESSION);
	CHECK(strstr(capstats_errmsg(h), "web") != NULL);
	list_names(h, names, sizeof(names));
	CHECK(strcmp(names, "dns idle spare") == 0);
	capstats_daemon(h, &d);
	CHECK(d.active_count == 3);
	/* A late publish does not touch the final counters. */
	shmw_publish(w, web.slot, &late);
	CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_OK);
	CHECK(s.packets == 50 && s.state == CAPSTATS_STOPPED);

	/* Full: the stopped entry is reused only after the delay. */
	CHECK(shmw_alloc(w, 1000 * SEC + SHMW_REUSE_NS - 1) == -1);
	CHECK(shmw_alloc(w, 1000 * SEC + SHMW_REUSE_NS) == (int)web.slot);
	CHECK(start(w, web.slot, "web", CAPSTATS_RUNNING) == 5);
	CHECK_RC(capstats_find(h, "web", &web2), CAPSTATS_OK);
	CHECK(web2.slot == web.slot && web2.session_id == 5);
	CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_E_GONE);
	CHECK(strstr(capstats_errmsg(h), "gone") != NULL);
	CHECK_RC(capstats_info(h, &web, &in), CAPSTATS_E_GONE);
	CHECK_RC(capstats_read(h, &web2, &s), CAPSTATS_OK);
	CHECK(s.packets == 0 && s.state == CAPSTATS_RUNNING);
	ref = (struct capstats_ref){ .slot = 99, .session_id = 5 };
	CHECK_RC(capstats_read(h, &ref, &s), CAPSTATS_E_GONE);
	CHECK_RC(capstats_info(h, &ref, &in), CAPSTATS_E_GONE);
	ref = (struct capstats_ref){ .slot = 3, .session_id = 999 };
	CHECK_RC(capstats_read(h, &ref, &s), CAPSTATS_E_GONE);
	capstats_daemon(h, &d);
	CHECK(d.active_count == 4);
}

static void
test_sessions(void)
{
	struct capstats_ref ref;
	struct capstats *h;
	struct shmw *w;
	char n[128];

	w = mk(tname(n, sizeof(n), "sessions"), 4);
	h = op(n, CAPSTATS_OK);
	if (w == NULL || h == NULL)
		return;
	CHECK_RC(capstats_find(h, "web", &ref), CAPSTATS_E_NOSESSION);
	CHECK(shmw_alloc(w, 0) == 0 && start(w, 0, "web", 1) == 1);
	CHECK(shmw_alloc(w, 0) == 1 && start(w, 1, "dns", 1) == 2);
	CHECK(shmw_alloc(w, 0) == 2 && start(w, 2, "idle", 1) == 3);
	CHECK(dir_seq(h) == 6);
	CHECK_RC(capstats_find(h, "dns", &ref), CAPSTATS_OK);
	CHECK(ref.slot == 1 && ref.session_id == 2);
	check_info(h, &ref, "dns", CAPSTATS_RUNNING);
	CHECK_RC(capstats_find(h, "nope", &ref), CAPSTATS_E_NOSESSION);
	CHECK_RC(capstats_find(h, NULL, &ref), CAPSTATS_E_NOSESSION);
	CHECK_RC(capstats_find(h, "", &ref), CAPSTATS_E_NOSESSION);
	test_publish(w, h);
	test_describe(w, h);
	test_stop_reuse(w, h);
	CHECK(h->retries == 0);		/* nobody wrote while we read */
	capstats_close(h);
	shmw_destroy(w);
}

static void
test_heartbeat(void)
{
	struct capstats_snapshot s;
	struct capstats_daemon d;
	struct capstats *h;
	struct shmw *w;
	char n[128];

	w = mk(tname(n, sizeof(n), "heartbeat"), 1);
	h = op(n, CAPSTATS_OK);
	if (w == NULL || h == NULL)
		return;
	CHECK_RC(capstats_check(h, 0), CAPSTATS_OK);
	CHECK_RC(capstats_check(h, SEC), CAPSTATS_OK);
	/* A never used entry reads as gone, whatever the id. */
	CHECK_RC(capstats_read(h, &(struct capstats_ref){ 0, 0 }, &s),
	    CAPSTATS_E_GONE);
	CHECK_RC(capstats_read(h, &(struct capstats_ref){ 0, 1 }, &s),
	    CAPSTATS_E_GONE);
	shmw_heartbeat(w, now_mono() - 5 * SEC);
	CHECK_RC(capstats_check(h, SEC), CAPSTATS_E_STALE);
	CHECK(strstr(capstats_errmsg(h), "heartbeat") != NULL);
	CHECK_RC(capstats_check(h, 0), CAPSTATS_OK);
	CHECK_RC(capstats_check(h, 10 * SEC), CAPSTATS_OK);
	shmw_heartbeat(w, now_mono());
	CHECK_RC(capstats_check(h, SEC), CAPSTATS_OK);
	capstats_daemon(h, &d);
	CHECK(d.heartbeat_count == 3);
	/* A heartbeat from the future is not stale. */
	shmw_heartbeat(w, now_mono() + 60 * SEC);
	CHECK_RC(capstats_check(h, SEC), CAPSTATS_OK);
	capstats_close(h);
	shmw_destroy(w);
}

static void
test_restart(void)
{
	struct capstats *h1, *h2, *h3;
	struct capstats_daemon d;
	struct shmw *w1, *w2;
	char n[128], path[256];

	w1 = mk(tname(n, sizeof(n), "restart"), 2);
	h1 = op(n, CAPSTATS_OK);
	if (w1 == NULL || h1 == NULL)
		return;
	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	CHECK_RC(capstats_check(h1, 0), CAPSTATS_OK);
	w2 = mk(n, 2);
	CHECK(w2 != NULL);
	CHECK_RC(capstats_check(h1, 0), CAPSTATS_E_RESTARTED);
	CHECK(strstr(capstats_errmsg(h1), "new daemon") != NULL);
	capstats_daemon(h1, &d);
	CHECK(d.state == CAPSTATS_SEG_SUPERSEDED);
	h2 = op(n, CAPSTATS_OK);
	CHECK(h2 != NULL && h2->instance != h1->instance);
	CHECK(h2 != NULL && h2->instance == shmw_instance(w2));
	/* The old daemon leaves the new segment alone. */
	shmw_destroy(w1);
	CHECK(access(path, F_OK) == 0);
	capstats_daemon(h1, &d);
	CHECK(d.state == CAPSTATS_SEG_SUPERSEDED);
	CHECK_RC(capstats_check(h2, 0), CAPSTATS_OK);
	/* A clean exit: CLOSED, and the name is gone. */
	shmw_destroy(w2);
	CHECK_RC(capstats_check(h2, 0), CAPSTATS_E_RESTARTED);
	capstats_daemon(h2, &d);
	CHECK(d.state == CAPSTATS_SEG_CLOSED);
	CHECK(strstr(capstats_errmsg(h2), "closed") != NULL);
	CHECK(access(path, F_OK) == -1);
	h3 = op(n, CAPSTATS_E_NOENT);
	capstats_close(h1);
	capstats_close(h2);
	capstats_close(h3);

	/* A name removed or replaced behind a READY segment. */
	w1 = mk(n, 1);
	h1 = op(n, CAPSTATS_OK);
	if (w1 == NULL || h1 == NULL)
		return;
	unlink(path);
	CHECK_RC(capstats_check(h1, 0), CAPSTATS_E_RESTARTED);
	CHECK(strstr(capstats_errmsg(h1), "removed") != NULL);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	CHECK_RC(capstats_check(h1, 0), CAPSTATS_E_RESTARTED);
	CHECK(strstr(capstats_errmsg(h1), "another file") != NULL);
	shmw_destroy(w1);
	CHECK(access(path, F_OK) == 0);		/* not ours: kept */
	unlink(path);
	capstats_close(h1);
}

/* In a private mount namespace, /dev/shm is a 64 KiB tmpfs. */
static int
enospc_child(const char *n)
{
	char err[256] = "";
	struct shmw *w;

	if (unshare(CLONE_NEWNS) == -1 ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k,mode=1777") ==
	    -1) {
		fprintf(stderr, "tiny tmpfs: %s\n", strerror(errno));
		return 2;
	}
	w = shmw_create(n, 0, 1024, HB_NS, err, sizeof(err));
	fprintf(stderr, "expected failure: %s\n", err);
	if (w != NULL || strstr(err, "No space left on device") == NULL ||
	    strstr(err, "/dev/shm is full") == NULL)
		return 3;
	if (scan(false) != 0)
		return 4;		/* the temporary file was removed */
	if ((w = shmw_create(n, 0, 1, HB_NS, err, sizeof(err))) == NULL)
		return 5;		/* and a small segment still fits */
	shmw_destroy(w);
	return 0;
}

static void
test_enospc(void)
{
	char n[128];
	pid_t pid;
	int status = -1;

	tname(n, sizeof(n), "enospc");
	if ((pid = fork()) == 0)
		_exit(enospc_child(n));
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A genuine image: two sessions, web (slot 0) and dns (slot 1). */
static unsigned char *
genuine(size_t *len)
{
	struct shmw_counts c = counts(7);
	unsigned char *img;
	struct shmw *w;
	char n[128], path[256];
	int fd;

	w = mk(tname(n, sizeof(n), "genuine"), 2);
	if (w == NULL)
		return NULL;
	CHECK(start(w, 0, "web", CAPSTATS_RUNNING) == 1);
	CHECK(start(w, 1, "dns", CAPSTATS_RUNNING) == 2);
	shmw_publish(w, 0, &c);
	*len = w->size;
	img = calloc(1, *len);
	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	fd = open(path, O_RDONLY);
	CHECK(img != NULL && fd != -1 && read(fd, img, *len) == (ssize_t)*len);
	close(fd);
	shmw_destroy(w);
	return img;
}

/* Write IMG as segment NAME with MODE. */
static void
plant(const char *n, const void *img, size_t len, mode_t mode)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	unlink(path);
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd != -1 && write(fd, img, len) == (ssize_t)len);
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

struct hostile {
	const char	*what;
	int		 want;
	void		 (*bend)(unsigned char *, size_t *);
};

#define HDR(img)	((struct cs_header *)(void *)(img))
#define BEND(fn, stmt)							\
static void								\
fn(unsigned char *img, size_t *len)					\
{									\
	(void)img;							\
	(void)len;							\
	stmt;								\
}

BEND(b_none, (void)0)
BEND(b_empty, *len = 0)
BEND(b_short, *len = 100)
BEND(b_headonly, *len = 4096)
BEND(b_magic, img[7] = 'Z')
BEND(b_major, HDR(img)->abi_major = 2)
BEND(b_minor, HDR(img)->abi_minor = 9)
BEND(b_endian, HDR(img)->endian_mark = 0x04030201)
BEND(b_hsize, HDR(img)->header_size = 100)
BEND(b_hsize_big, HDR(img)->header_size = 1u << 30)
BEND(b_segsize, HDR(img)->segment_size = *len + 8)
BEND(b_slots0, HDR(img)->slot_count = 0)
BEND(b_slots_max, HDR(img)->slot_count = CS_SLOTS_MAX + 1)
BEND(b_slots_huge, HDR(img)->slot_count = UINT32_MAX)
BEND(b_slots_fit, HDR(img)->slot_count = 1000)
BEND(b_cstride, HDR(img)->counters_stride = 64)
BEND(b_cstride_odd, HDR(img)->counters_stride = 132)
BEND(b_mstride, HDR(img)->meta_stride = 256)
BEND(b_fstride, HDR(img)->field_stride = 16)
BEND(b_coff_end, HDR(img)->counters_offset = HDR(img)->segment_size)
BEND(b_coff_huge, HDR(img)->counters_offset = 1ull << 63)
BEND(b_moff_wrap, HDR(img)->meta_offset = UINT64_MAX - 7)
BEND(b_coff_hdr, HDR(img)->counters_offset = 0)
BEND(b_coff_mis, HDR(img)->counters_offset += 4)
BEND(b_moff_mis, HDR(img)->meta_offset += 1)
BEND(b_foff_end, HDR(img)->field_offset = HDR(img)->segment_size - 8)
BEND(b_fcount, HDR(img)->field_count = UINT32_MAX)
BEND(b_init, HDR(img)->state = CAPSTATS_SEG_INIT)
BEND(b_state9, HDR(img)->state = 9)
BEND(b_closed, HDR(img)->state = CAPSTATS_SEG_CLOSED)
BEND(b_superseded, HDR(img)->state = CAPSTATS_SEG_SUPERSEDED)

static const struct hostile hostiles[] = {
	{ "genuine", CAPSTATS_OK, b_none },
	{ "empty", CAPSTATS_E_INVALID, b_empty },
	{ "truncated", CAPSTATS_E_INVALID, b_short },
	{ "header only", CAPSTATS_E_INVALID, b_headonly },
	{ "magic", CAPSTATS_E_INVALID, b_magic },
	{ "major", CAPSTATS_E_VERSION, b_major },
	{ "newer minor", CAPSTATS_OK, b_minor },
	{ "endian", CAPSTATS_E_INVALID, b_endian },
	{ "header size small", CAPSTATS_E_INVALID, b_hsize },
	{ "header size big", CAPSTATS_E_INVALID, b_hsize_big },
	{ "segment size", CAPSTATS_E_INVALID, b_segsize },
	{ "no slots", CAPSTATS_E_INVALID, b_slots0 },
	{ "slots over max", CAPSTATS_E_INVALID, b_slots_max },
	{ "slots huge", CAPSTATS_E_INVALID, b_slots_huge },
	{ "slots past end", CAPSTATS_E_INVALID, b_slots_fit },
	{ "counters stride", CAPSTATS_E_INVALID, b_cstride },
	{ "counters stride odd", CAPSTATS_E_INVALID, b_cstride_odd },
	{ "meta stride", CAPSTATS_E_INVALID, b_mstride },
	{ "field stride", CAPSTATS_E_INVALID, b_fstride },
	{ "counters at end", CAPSTATS_E_INVALID, b_coff_end },
	{ "counters far", CAPSTATS_E_INVALID, b_coff_huge },
	{ "meta wraps", CAPSTATS_E_INVALID, b_moff_wrap },
	{ "counters in header", CAPSTATS_E_INVALID, b_coff_hdr },
	{ "counters misaligned", CAPSTATS_E_INVALID, b_coff_mis },
	{ "meta misaligned", CAPSTATS_E_INVALID, b_moff_mis },
	{ "fields past end", CAPSTATS_E_INVALID, b_foff_end },
	{ "field count", CAPSTATS_E_INVALID, b_fcount },
	{ "state init", CAPSTATS_E_INVALID, b_init },
	{ "state unknown", CAPSTATS_E_INVALID, b_state9 },
	{ "state closed", CAPSTATS_E_NOENT, b_closed },
	{ "state superseded", CAPSTATS_E_RESTARTED, b_superseded },
};

static void
test_hostile_headers(const unsigned char *img, size_t len)
{
	unsigned char *bad = malloc(len);
	struct capstats *h;
	char n[128];
	size_t i, l;

	for (i = 0; bad != NULL && i < sizeof(hostiles) / sizeof(hostiles[0]);
	    i++) {
		memcpy(bad, img, len);
		l = len;
		hostiles[i].bend(bad, &l);
		plant(tname(n, sizeof(n), "hostile"), bad, l, 0640);
		h = op(n, hostiles[i].want);
		if (h == NULL && hostiles[i].want == CAPSTATS_OK)
			fprintf(stderr, "  case: %s\n", hostiles[i].what);
		capstats_close(h);
	}
	free(bad);
}

static void
test_hostile_files(const unsigned char *img, size_t len)
{
	char n[128], n2[128], path[256], path2[256];
	static const mode_t modes[] = { 0666, 0660, 0642, 0646, 02 };
	size_t i;
	int fd;

	tname(n, sizeof(n), "file");
	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		plant(n, img, len, modes[i]);
		refused(n, CAPSTATS_E_INVALID, "writable by others");
	}
	plant(n, img, len, 0644);
	capstats_close(op(n, CAPSTATS_OK));
	plant(n, img, len, 0400);
	capstats_close(op(n, CAPSTATS_OK));

	plant(n, img, len, 0640);
	CHECK(chown(path, 1000, 0) == 0);
	refused(n, CAPSTATS_E_INVALID, "not root");

	plant(tname(n2, sizeof(n2), "target"), img, len, 0640);
	snprintf(path2, sizeof(path2), "/dev/shm/%s", n2);
	unlink(path);
	CHECK(symlink(path2, path) == 0);
	refused(n, CAPSTATS_E_INVALID, "symbolic link");
	unlink(path);
	CHECK(link(path2, path) == 0);
	refused(n, CAPSTATS_E_INVALID, "2 links");
	unlink(path);
	CHECK(mkfifo(path, 0600) == 0);		/* must not block */
	refused(n, CAPSTATS_E_INVALID, "not a regular file");
	unlink(path);
	CHECK(mkdir(path, 0700) == 0);
	refused(n, CAPSTATS_E_INVALID, "not a regular file");
	rmdir(path);
	fd = open(path, O_CREAT | O_WRONLY, 0640);
	close(fd);
	refused(n, CAPSTATS_E_INVALID, "size 0");
	unlink(path);
	refused(n, CAPSTATS_E_NOENT, "daemon not running (no segment ");
	unlink(path2);
}

/* An unprivileged reader of a 0640 root:root segment. */
static void
test_perm(const unsigned char *img, size_t len)
{
	char n[128], errbuf[CAPSTATS_ERRBUF_SIZE];
	pid_t pid;
	int rc, status = -1;

	plant(tname(n, sizeof(n), "perm"), img, len, 0640);
	if ((pid = fork()) == 0) {
		if (setgroups(0, NULL) == -1 || setgid(65534) == -1 ||
		    setuid(65534) == -1)
			_exit(100);
		if (capstats_open(n, &rc, errbuf) != NULL)
			_exit(101);
		_exit(rc == CAPSTATS_E_PERM &&
		    strstr(errbuf, "permission denied") != NULL ? 0 : 102);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Write the words of one block of the planted segment. */
static void
fill_words(unsigned char *img, uint64_t off, size_t nwords, uint64_t v)
{
	size_t i;

	for (i = 0; i < nwords; i++)
		memcpy(img + off + i * 8, &v, 8);
}

static void
test_hostile_slots(const unsigned char *img, size_t len)
{
	unsigned char *bad = malloc(len);
	struct capstats_ref web = { 0, 1 }, dns = { 1, 2 };
	struct capstats_ref ref = { .slot = UINT32_MAX };
	struct capstats_snapshot s;
	struct capstats_info in;
	struct capstats *h;
	uint64_t moff, coff, t0;
	char n[128], cut[CAPSTATS_NAME_MAX + 1];

	if (bad == NULL)
		return;
	moff = HDR(img)->meta_offset;
	coff = HDR(img)->counters_offset;
	tname(n, sizeof(n), "slots");

	/* Unterminated name in slot 0; slot 1 still reads. */
	memcpy(bad, img, len);
	fill_words(bad, moff + offsetof(struct cs_meta, name), CS_NAME_WORDS,
	    0x4141414141414141ull);
	HDR(bad)->high_water = UINT32_MAX;
	plant(n, bad, len, 0640);
	if ((h = op(n, CAPSTATS_OK)) != NULL) {
		CHECK_RC(capstats_info(h, &web, &in), CAPSTATS_E_INVALID);
		CHECK(strlen(in.name) == CAPSTATS_NAME_MAX);
		memcpy(cut, in.name, sizeof(cut));
		CHECK_RC(capstats_next(h, &ref, &in), CAPSTATS_E_INVALID);
		CHECK(ref.slot == 0 && strlen(in.name) == CAPSTATS_NAME_MAX);
		CHECK_RC(capstats_next(h, &ref, &in), CAPSTATS_OK);
		CHECK(ref.slot == 1 && strcmp(in.name, "dns") == 0);
		CHECK_RC(capstats_next(h, &ref, &in), CAPSTATS_E_NOSESSION);
		CHECK_RC(capstats_find(h, "dns", &ref), CAPSTATS_OK);
		CHECK_RC(capstats_find(h, cut, &ref), CAPSTATS_E_NOSESSION);
		CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_OK);
		CHECK(s.packets == 7);
		capstats_close(h);
	}

	/* Unterminated interface, filter and error texts; unknown states. */
	memcpy(bad, img, len);
	fill_words(bad, moff + offsetof(struct cs_meta, iface),
	    CS_IFACE_WORDS, 0x4242424242424242ull);
	fill_words(bad, moff + CS_META_STRIDE + offsetof(struct cs_meta,
	    filter), CS_FILTER_WORDS, 0x4343434343434343ull);
	fill_words(bad, moff + CS_META_STRIDE + offsetof(struct cs_meta,
	    error), CS_ERROR_WORDS, 0x4444444444444444ull);
	plant(n, bad, len, 0640);
	if ((h = op(n, CAPSTATS_OK)) != NULL) {
		CHECK_RC(capstats_info(h, &web, &in), CAPSTATS_E_INVALID);
		CHECK(strlen(in.iface) == CAPSTATS_IFACE_MAX);
		CHECK_RC(capstats_info(h, &dns, &in), CAPSTATS_E_INVALID);
		CHECK(strlen(in.filter) == CAPSTATS_SHM_FILTER_MAX);
		CHECK(strlen(in.error) == CAPSTATS_SHM_ERROR_MAX);
		CHECK_RC(capstats_find(h, "web", &ref), CAPSTATS_E_NOSESSION);
		capstats_close(h);
	}
	memcpy(bad, img, len);
	bad[coff + offsetof(struct cs_counters, state)] = 7;
	bad[moff + CS_META_STRIDE + offsetof(struct cs_meta, state)] = 9;
	plant(n, bad, len, 0640);
	if ((h = op(n, CAPSTATS_OK)) != NULL) {
		CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_E_INVALID);
		CHECK_RC(capstats_info(h, &dns, &in), CAPSTATS_E_INVALID);
		capstats_close(h);
	}

	/* A writer that died inside a write: bounded patience, then BUSY. */
	memcpy(bad, img, len);
	bad[coff] |= 1;
	bad[moff] |= 1;
	plant(n, bad, len, 0640);
	if ((h = op(n, CAPSTATS_OK)) != NULL) {
		t0 = now_mono();
		CHECK_RC(capstats_read(h, &web, &s), CAPSTATS_E_BUSY);
		CHECK(now_mono() - t0 >= RD_PATIENCE_NS / 2);
		CHECK(now_mono() - t0 < 5 * RD_PATIENCE_NS);
		CHECK(strstr(capstats_errmsg(h), "stalled") != NULL);
		CHECK(h->retries > RD_SPINS);
		CHECK_RC(capstats_find(h, "dns", &ref), CAPSTATS_OK);
		CHECK_RC(capstats_find(h, "web", &ref), CAPSTATS_E_BUSY);
		CHECK_RC(capstats_read(h, &dns, &s), CAPSTATS_OK);
		capstats_close(h);
	}
	free(bad);
}

/*
 * Plant case K at PATH (victim at PATH2 where there is one); return an fd
 * to the file a careless writer would write through, or -1.
 */
static int
plant_trap(int k, const unsigned char *img, size_t len, const char *n,
    const char *n2, const char *path, const char *path2)
{
	unlink(path);
	unlink(path2);
	switch (k) {
	case 0:		/* a symlink to a genuine segment */
		plant(n2, img, len, 0640);
		CHECK(symlink(path2, path) == 0);
		return open(path2, O_RDONLY);
	case 1:		/* a second link to one */
		plant(n2, img, len, 0640);
		CHECK(link(path2, path) == 0);
		return open(path2, O_RDONLY);
	case 2:		/* a user's file that looks genuine */
		plant(n, img, len, 0640);
		CHECK(chown(path, 1000, 1000) == 0);
		return open(path, O_RDONLY);
	default:	/* a FIFO, which must not block the writer */
		CHECK(mkfifo(path, 0666) == 0);
		return -1;
	}
}

/* The writer never writes through a name it did not make. */
static void
test_planted(const unsigned char *img, size_t len)
{
	char n[128], n2[128], path[256], path2[256];
	struct cs_header hd;
	struct stat st;
	struct shmw *w;
	int fd, k;

	tname(n, sizeof(n), "planted");
	tname(n2, sizeof(n2), "victim");
	snprintf(path, sizeof(path), "/dev/shm/%s", n);
	snprintf(path2, sizeof(path2), "/dev/shm/%s", n2);
	for (k = 0; k < 4; k++) {
		fd = plant_trap(k, img, len, n, n2, path, path2);
		w = mk(n, 1);
		CHECK(w != NULL);
		if (fd != -1) {
			CHECK(pread(fd, &hd, sizeof(hd), 0) == sizeof(hd));
			CHECK(hd.state == CAPSTATS_SEG_READY);
			close(fd);
		}
		CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_uid == 0 && st.st_nlink == 1);
		shmw_destroy(w);
	}

	/* A genuine one is marked SUPERSEDED before it is replaced. */
	plant(n, img, len, 0640);
	fd = open(path, O_RDONLY);
	w = mk(n, 1);
	CHECK(w != NULL);
	CHECK(pread(fd, &hd, sizeof(hd), 0) == sizeof(hd));
	CHECK(hd.state == CAPSTATS_SEG_SUPERSEDED);
	close(fd);
	shmw_destroy(w);
	unlink(path2);
}

static void
test_strerror(void)
{
	int rc, j;

	CHECK(strcmp(capstats_errmsg(NULL), "") == 0);
	for (rc = CAPSTATS_E_SYS; rc <= CAPSTATS_OK; rc++) {
		CHECK(strcmp(capstats_strerror(rc), "unknown error") != 0);
		for (j = CAPSTATS_E_SYS; j < rc; j++)
			CHECK(strcmp(capstats_strerror(rc),
			    capstats_strerror(j)) != 0);
	}
	CHECK(strcmp(capstats_strerror(-99), "unknown error") == 0);
}

static void
test_state_name(void)
{
	CHECK(strcmp(capstats_state_name(CAPSTATS_FREE), "free") == 0);
	CHECK(strcmp(capstats_state_name(CAPSTATS_RUNNING), "running") == 0);
	CHECK(strcmp(capstats_state_name(CAPSTATS_ERROR), "error") == 0);
	CHECK(strcmp(capstats_state_name(CAPSTATS_STOPPED), "stopped") == 0);
	CHECK(strcmp(capstats_state_name(CAPSTATS_STOPPED + 1), "unknown") == 0);
	CHECK(strcmp(capstats_state_name((enum capstats_state)UINT32_MAX),
	    "unknown") == 0);
}

int
main(void)
{
	unsigned char *img;
	size_t len = 0;

	if (geteuid() != 0) {
		fprintf(stderr, "test_shm: must run as root\n");
		return 1;
	}
	snprintf(prefix, sizeof(prefix), "capstats-test-%ld-", (long)getpid());
	signal(SIGPIPE, SIG_IGN);
	test_strerror();
	test_state_name();
	test_names();
	test_create();
	test_alloc();
	test_sessions();
	test_heartbeat();
	test_restart();
	test_enospc();
	if ((img = genuine(&len)) != NULL) {
		test_hostile_headers(img, len);
		test_hostile_files(img, len);
		test_perm(img, len);
		test_hostile_slots(img, len);
		test_planted(img, len);
	}
	free(img);
	CHECK(img != NULL);
	CHECK(scan(true) == 0);
	return check_done("test_shm");
}
