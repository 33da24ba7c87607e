/*
 * fuzz_segment.c: libFuzzer target for the reader's checks on a hostile
 * segment. Each input becomes a root-owned file in /dev/shm that
 * libcapstats opens and reads with every call a reader makes. No call may
 * crash, wait past its patience, or touch a byte of the mapping outside
 * the header and the tables the header declares: the rest is poisoned for
 * AddressSanitizer while the handle is open.
 *
 * Input: a 32-bit little-endian file size, then the file's first bytes;
 * the file is cut to that size or padded with zeros. Runs as root, since
 * the reader refuses a segment that root does not own.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <sanitizer/asan_interface.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fuzz.h"

/*
 * The reader's patience is measured in time: a segment whose seqlock
 * stays odd costs it 200 ms a call. Its clock, naps and yields are
 * redirected to a virtual clock that naps advance, so the patience logic
 * runs unchanged and at full speed, and how long it waited can be checked.
 */
static uint64_t fz_now_ns = 1000000000000ull;

static int fz_clock_gettime(clockid_t, struct timespec *);
static int fz_nanosleep(const struct timespec *, struct timespec *);
static int fz_sched_yield(void);
#define clock_gettime	fz_clock_gettime
#define nanosleep	fz_nanosleep
#define sched_yield	fz_sched_yield
#include "../../shm/reader.c"
#undef clock_gettime
#undef nanosleep
#undef sched_yield

#define FZ_FILE_MAX	(1u << 20)	/* larger files only take longer to map */
#define FZ_YIELD_NS	1000u		/* what a sched_yield() costs on the clock */
/* A call that finds no stable read gives up after its patience and one nap. */
#define FZ_WAIT_MAX	(RD_PATIENCE_NS + RD_NAP_MAX_NS + RD_YIELDS * FZ_YIELD_NS)
#define FZ_PAGE		4096u

static char fz_name[96], fz_path[sizeof(RD_DIR) + sizeof(fz_name)];

static int
fz_clock_gettime(clockid_t id, struct timespec *ts)
{
	(void)id;
	ts->tv_sec = (time_t)(fz_now_ns / 1000000000u);
	ts->tv_nsec = (long)(fz_now_ns % 1000000000u);
	return 0;
}

static int
fz_nanosleep(const struct timespec *req, struct timespec *rem)
{
	(void)rem;
	fz_now_ns += (uint64_t)req->tv_sec * 1000000000u + (uint64_t)req->tv_nsec;
	return 0;
}

static int
fz_sched_yield(void)
{
	fz_now_ns += FZ_YIELD_NS;
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *prefix = getenv("CAPSTATS_FUZZ_SHM");

	(void)argc;
	(void)argv;
	if (geteuid() != 0) {
		fprintf(stderr, "fuzz_segment: must run as root: the reader "
		    "accepts only root's segments\n");
		exit(1);
	}
	/*
	 * One file per process, rewritten for every input. A test names the
	 * prefix to find what a crash between open and unlink leaves behind.
	 */
	snprintf(fz_name, sizeof(fz_name), "%s-%ld",
	    prefix != NULL && *prefix != '\0' ? prefix : "capstats-fuzz",
	    (long)getpid());
	snprintf(fz_path, sizeof(fz_path), "%s%s", RD_DIR, fz_name);
	return 0;
}

/* The file the input describes, as the daemon would leave it: root's, 0640. */
static void
fz_write(const uint8_t *data, size_t size)
{
	uint32_t fsize;
	size_t n;
	int fd;

	fsize = ((uint32_t)data[0] | (uint32_t)data[1] << 8 |
	    (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24) % (FZ_FILE_MAX + 1);
	data += 4;
	size -= 4;
	n = size < fsize ? size : fsize;
	fd = open(fz_path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	FZ_ASSERT(fd != -1);
	FZ_ASSERT(fchmod(fd, 0640) == 0);
	FZ_ASSERT(n == 0 || write(fd, data, n) == (ssize_t)n);
	FZ_ASSERT(ftruncate(fd, (off_t)fsize) == 0);
	FZ_ASSERT(close(fd) == 0);
}

/* [OFF, OFF + LEN) of the mapping may be read. */
static void
fz_allow(const struct capstats *h, uint64_t off, uint64_t len)
{
	FZ_ASSERT(off <= h->maplen && len <= h->maplen - off);
	__asan_unpoison_memory_region(h->base + off, (size_t)len);
}

/*
 * Poison the whole mapping, up to the end of its last page, except what
 * the header declares and the reader has checked: the header, the two
 * slot tables and the field table.
 */
static void
fz_fence(const struct capstats *h)
{
	struct cs_header c;

	memcpy(&c, h->base, offsetof(struct cs_header, state));
	__asan_poison_memory_region(h->base,
	    (h->maplen + FZ_PAGE - 1) / FZ_PAGE * FZ_PAGE);
	fz_allow(h, 0, c.header_size);
	fz_allow(h, h->ctr_off, (uint64_t)h->nslots * h->ctr_stride);
	fz_allow(h, h->meta_off, (uint64_t)h->nslots * h->meta_stride);
	fz_allow(h, c.field_offset, (uint64_t)c.field_count * c.field_stride);
}

static void
fz_unfence(const struct capstats *h)
{
	__asan_unpoison_memory_region(h->base,
	    (h->maplen + FZ_PAGE - 1) / FZ_PAGE * FZ_PAGE);
}

/* Every result comes with a message that fits its buffer. */
static void
fz_result(const struct capstats *h, int rc, uint64_t since)
{
	FZ_ASSERT(fz_now_ns - since <= FZ_WAIT_MAX);
	FZ_ASSERT(rc <= CAPSTATS_OK && rc >= CAPSTATS_E_SYS);
	if (rc != CAPSTATS_OK)
		FZ_ASSERT(memchr(capstats_errmsg(h), '\0',
		    CAPSTATS_ERRBUF_SIZE) != NULL);
}

static bool
fz_terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* Text fields always end inside their arrays. */
static void
fz_check_info(const struct capstats_info *in)
{
	FZ_ASSERT(fz_terminated(in->name, sizeof(in->name)));
	FZ_ASSERT(fz_terminated(in->iface, sizeof(in->iface)));
	FZ_ASSERT(fz_terminated(in->filter, sizeof(in->filter)));
	FZ_ASSERT(fz_terminated(in->error, sizeof(in->error)));
	FZ_ASSERT(in->state <= CAPSTATS_STOPPED);
}

static bool
fz_same_info(const struct capstats_info *a, const struct capstats_info *b)
{
	return a->session_id == b->session_id && a->slot == b->slot &&
	    a->state == b->state && a->mode == b->mode &&
	    a->flags == b->flags && a->created_ns == b->created_ns &&
	    a->modified_ns == b->modified_ns &&
	    a->config_gen == b->config_gen &&
	    strcmp(a->name, b->name) == 0 && strcmp(a->iface, b->iface) == 0 &&
	    strcmp(a->filter, b->filter) == 0 && strcmp(a->error, b->error) == 0;
}

/* Read REF's counters and description, whatever REF is. */
static void
fz_read_ref(struct capstats *h, const struct capstats_ref *ref)
{
	struct capstats_snapshot snap;
	struct capstats_info in;
	uint64_t t = fz_now_ns;
	int rc;

	rc = capstats_read(h, ref, &snap);
	fz_result(h, rc, t);
	FZ_ASSERT(rc == CAPSTATS_OK || rc == CAPSTATS_E_GONE ||
	    rc == CAPSTATS_E_INVALID || rc == CAPSTATS_E_BUSY);
	if (rc == CAPSTATS_OK)
		FZ_ASSERT(snap.session_id == ref->session_id &&
		    snap.session_id != 0 && snap.state != CAPSTATS_FREE &&
		    snap.state <= CAPSTATS_STOPPED);
	if (ref->slot >= h->nslots)
		FZ_ASSERT(rc == CAPSTATS_E_GONE);
	t = fz_now_ns;
	rc = capstats_info(h, ref, &in);
	fz_result(h, rc, t);
	FZ_ASSERT(rc == CAPSTATS_OK || rc == CAPSTATS_E_GONE ||
	    rc == CAPSTATS_E_INVALID || rc == CAPSTATS_E_BUSY);
	if (rc == CAPSTATS_OK) {
		fz_check_info(&in);
		FZ_ASSERT(in.session_id == ref->session_id && in.slot == ref->slot);
	}
}

/*
 * One session that capstats_next() returned: the same slot read again
 * says the same, and a search by its name stops there or before.
 */
static void
fz_check_listed(struct capstats *h, const struct capstats_ref *ref,
    const struct capstats_info *in)
{
	struct capstats_info again;
	struct capstats_ref found;
	uint64_t t;
	int rc;

	fz_check_info(in);
	FZ_ASSERT(in->slot == ref->slot && in->session_id == ref->session_id);
	FZ_ASSERT(rd_live(in->state));
	t = fz_now_ns;
	rc = capstats_info(h, ref, &again);
	fz_result(h, rc, t);
	if (ref->session_id != 0)
		FZ_ASSERT(rc == CAPSTATS_OK && fz_same_info(in, &again));
	else
		FZ_ASSERT(rc == CAPSTATS_E_GONE);
	t = fz_now_ns;
	rc = capstats_find(h, in->name, &found);
	fz_result(h, rc, t);
	FZ_ASSERT(rc == CAPSTATS_OK && found.slot <= ref->slot);
	fz_read_ref(h, ref);
}

/* capstats_next() over the table: strictly forward, once per slot at most. */
static void
fz_walk(struct capstats *h, uint32_t slots)
{
	struct capstats_info in;
	struct capstats_ref ref = { .slot = UINT32_MAX };
	uint32_t prev, n = 0;
	uint64_t t;
	int rc;

	for (;;) {
		prev = ref.slot;
		t = fz_now_ns;
		rc = capstats_next(h, &ref, &in);
		fz_result(h, rc, t);
		if (rc == CAPSTATS_E_NOSESSION)
			return;
		FZ_ASSERT(rc == CAPSTATS_OK || rc == CAPSTATS_E_BUSY ||
		    rc == CAPSTATS_E_INVALID);
		FZ_ASSERT(ref.slot < slots &&
		    (prev == UINT32_MAX || ref.slot > prev));
		FZ_ASSERT(++n <= slots);
		if (rc == CAPSTATS_OK)
			fz_check_listed(h, &ref, &in);
	}
}

static void
fz_exercise(struct capstats *h)
{
	static const char *const names[] = {
		"web", "", "a", "x-y_z.0",
		"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
	};
	struct capstats_daemon d;
	struct capstats_ref ref;
	uint64_t t;
	size_t i;
	int rc;

	FZ_ASSERT(capstats_daemon(h, &d) == CAPSTATS_OK);
	FZ_ASSERT(d.slot_count >= 1 && d.slot_count <= CS_SLOTS_MAX);
	for (i = 0; i < 2; i++) {
		t = fz_now_ns;
		rc = capstats_check(h, i);
		fz_result(h, rc, t);
		FZ_ASSERT(rc == CAPSTATS_OK || rc == CAPSTATS_E_RESTARTED ||
		    rc == CAPSTATS_E_STALE);
	}
	/*
	 * The name is only needed to open and check: go on from here as a
	 * reader does after the daemon exited, and leave nothing in /dev/shm
	 * should a later call crash.
	 */
	FZ_ASSERT(unlink(fz_path) == 0);
	t = fz_now_ns;
	rc = capstats_check(h, 0);
	fz_result(h, rc, t);
	FZ_ASSERT(rc == CAPSTATS_E_RESTARTED);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		t = fz_now_ns;
		rc = capstats_find(h, names[i], &ref);
		fz_result(h, rc, t);
		FZ_ASSERT(rc == CAPSTATS_OK || rc == CAPSTATS_E_NOSESSION ||
		    rc == CAPSTATS_E_BUSY);
		if (rc == CAPSTATS_OK) {
			FZ_ASSERT(ref.slot < d.slot_count);
			fz_read_ref(h, &ref);
		}
	}
	fz_walk(h, d.slot_count);
	/* References no listing hands out: stale, foreign or out of range. */
	fz_read_ref(h, &(struct capstats_ref){ 0, 0 });
	fz_read_ref(h, &(struct capstats_ref){ 0, 1 });
	fz_read_ref(h, &(struct capstats_ref){ d.slot_count - 1, UINT64_MAX });
	fz_read_ref(h, &(struct capstats_ref){ d.slot_count, 1 });
	fz_read_ref(h, &(struct capstats_ref){ UINT32_MAX, 1 });
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char errbuf[CAPSTATS_ERRBUF_SIZE];
	struct capstats *h;
	uint64_t t;
	int rc;

	if (size < 4)
		return -1;
	fz_write(data, size);
	t = fz_now_ns;
	h = capstats_open(fz_name, &rc, errbuf);
	FZ_ASSERT(fz_now_ns == t);
	FZ_ASSERT(fz_terminated(errbuf, sizeof(errbuf)));
	if (h == NULL) {
		FZ_ASSERT(rc != CAPSTATS_OK && errbuf[0] != '\0');
		FZ_ASSERT(unlink(fz_path) == 0);
		return 0;
	}
	FZ_ASSERT(rc == CAPSTATS_OK);
	fz_fence(h);
	fz_exercise(h);
	fz_unfence(h);
	capstats_close(h);
	return 0;
}
