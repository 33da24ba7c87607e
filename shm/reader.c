/*
 * reader.c: libcapstats, the reader of the segment. It maps the segment
 * read-only, trusts no byte of it before checking, and copies snapshots
 * under the seqlocks. It never writes to the segment, never prints, never
 * waits without a limit, and needs nothing but libc.
 */
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capstats.h"
#include "clock.h"
#include "layout.h"
#include "seqlock.h"

#define RD_DIR		"/dev/shm/"
#define RD_ENV		"CAPSTATS_SHM"
#define RD_NAME_MAX	200
#define RD_SPINS	100		/* retries before yielding the CPU */
#define RD_YIELDS	10		/* then sched_yield() retries */
#define RD_PATIENCE_NS	200000000ull	/* then naps, this long at most */
#define RD_NAP_MIN_NS	50000L
#define RD_NAP_MAX_NS	1000000L

#define RD_SIZEOF(t, m)	sizeof(((t *)0)->m)
static_assert(RD_SIZEOF(struct capstats_info, name) == CS_NAME_WORDS * 8,
    "info name");
static_assert(RD_SIZEOF(struct capstats_info, iface) == CS_IFACE_WORDS * 8,
    "info iface");
static_assert(RD_SIZEOF(struct capstats_info, filter) == CS_FILTER_WORDS * 8,
    "info filter");
static_assert(RD_SIZEOF(struct capstats_info, error) == CS_ERROR_WORDS * 8,
    "info error");

struct capstats {
	const unsigned char	*base;
	size_t			 maplen;
	dev_t			 dev;
	ino_t			 ino;
	/* Immutable after READY, checked once by rd_layout(). */
	uint64_t		 instance;
	uint64_t		 start_realtime_ns;
	uint64_t		 heartbeat_interval_ns;
	uint64_t		 ctr_off;
	uint64_t		 meta_off;
	uint32_t		 ctr_stride;
	uint32_t		 meta_stride;
	uint32_t		 nslots;
	uint32_t		 pid;
	uint64_t		 retries;	/* failed read attempts */
	char			 path[sizeof(RD_DIR) + RD_NAME_MAX];
	char			 err[CAPSTATS_ERRBUF_SIZE];
};

/* The patience of one call, shared by every block it reads. */
struct rd_wait {
	unsigned	tries;
	uint64_t	since;		/* CLOCK_MONOTONIC, end of spinning */
	long		nap_ns;
};

static int rd_fail(struct capstats *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
rd_fail(struct capstats *h, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->err, sizeof(h->err), fmt, ap);
	va_end(ap);
	return rc;
}

static void
rd_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* After a failed attempt: 0 to try again, -1 when patience ran out. */
static int
rd_backoff(struct capstats *h, struct rd_wait *w)
{
	struct timespec ts;
	uint64_t now;

	h->retries++;
	if (++w->tries <= RD_SPINS) {
		rd_relax();
		return 0;
	}
	now = now_mono();
	if (w->since == 0)
		w->since = now;
	if (now - w->since >= RD_PATIENCE_NS)
		return -1;
	if (w->tries <= RD_SPINS + RD_YIELDS) {
		sched_yield();
		return 0;
	}
	w->nap_ns = w->nap_ns == 0 ? RD_NAP_MIN_NS : w->nap_ns * 2;
	if (w->nap_ns > RD_NAP_MAX_NS)
		w->nap_ns = RD_NAP_MAX_NS;
	ts.tv_sec = 0;
	ts.tv_nsec = w->nap_ns;
	nanosleep(&ts, NULL);
	return 0;
}

static int
rd_busy(struct capstats *h, uint32_t slot)
{
	return rd_fail(h, CAPSTATS_E_BUSY,
	    "slot %" PRIu32 ": no stable read within %llu ms (writer stalled?)",
	    slot, RD_PATIENCE_NS / 1000000);
}

static const struct cs_header *
rd_hdr(const struct capstats *h)
{
	return (const void *)h->base;
}

static const struct cs_counters *
rd_ctr(const struct capstats *h, uint32_t slot)
{
	return (const void *)(h->base + h->ctr_off +
	    (uint64_t)slot * h->ctr_stride);
}

static const struct cs_meta *
rd_meta_at(const struct capstats *h, uint32_t slot)
{
	return (const void *)(h->base + h->meta_off +
	    (uint64_t)slot * h->meta_stride);
}

/* Slots at or above this were never used; never more than slot_count. */
static uint32_t
rd_high_water(const struct capstats *h)
{
	uint32_t hw = seq_acquire32(&rd_hdr(h)->high_water);

	return hw < h->nslots ? hw : h->nslots;
}

static bool
rd_live(uint32_t state)
{
	return state == CAPSTATS_RUNNING || state == CAPSTATS_ERROR;
}

/* NULL: $CAPSTATS_SHM, else "capstats"; then as for shm_open(3). */
static int
rd_path(struct capstats *h, const char *name)
{
	size_t n;

	if (name == NULL && ((name = getenv(RD_ENV)) == NULL || *name == '\0'))
		name = CAPSTATS_SHM_DEFAULT;
	if (name[0] == '/')
		name++;
	n = strlen(name);
	if (n == 0 || n > RD_NAME_MAX || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "bad shared memory name \"%.*s\"", RD_NAME_MAX, name);
	snprintf(h->path, sizeof(h->path), "%s%s", RD_DIR, name);
	return CAPSTATS_OK;
}

static int
rd_open_fail(struct capstats *h)
{
	switch (errno) {
	case ENOENT:
		return rd_fail(h, CAPSTATS_E_NOENT,
		    "daemon not running (no segment %s)", h->path);
	case EACCES:
	case EPERM:
		return rd_fail(h, CAPSTATS_E_PERM, "%s: permission denied",
		    h->path);
	case ELOOP:
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s is a symbolic link: refused", h->path);
	default:
		return rd_fail(h, CAPSTATS_E_SYS, "open %s: %s", h->path,
		    strerror(errno));
	}
}

/* Only root can have written a file that passes these. */
static int
rd_file_ok(struct capstats *h, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s is not a regular file: refused", h->path);
	if (st->st_uid != 0)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s is owned by uid %ld, not root: refused", h->path,
		    (long)st->st_uid);
	if ((st->st_mode & 022) != 0)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s has mode %04o, writable by others: refused", h->path,
		    (unsigned)(st->st_mode & 07777));
	if (st->st_nlink != 1)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s has %lu links, not 1: refused", h->path,
		    (unsigned long)st->st_nlink);
	if (st->st_size < (off_t)sizeof(struct cs_header) ||
	    (uint64_t)st->st_size > SIZE_MAX)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: size %lld is not that of a segment", h->path,
		    (long long)st->st_size);
	return CAPSTATS_OK;
}

/*
 * Does an array of COUNT * STRIDE bytes at OFF lie between LOW and the end
 * of the segment, with every word aligned? The product cannot overflow:
 * both factors are 32-bit.
 */
static bool
rd_fits(const struct cs_header *c, uint64_t low, uint64_t off,
    uint64_t count, uint64_t stride)
{
	return off % 8 == 0 && stride % 8 == 0 && off >= low &&
	    off <= c->segment_size && count * stride <= c->segment_size - off;
}

/* The header's promises about sizes and offsets, against the file. */
static int
rd_layout(struct capstats *h, const struct cs_header *c)
{
	if (c->header_size < sizeof(struct cs_header) ||
	    c->segment_size < c->header_size || c->segment_size > h->maplen)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: header size %" PRIu32 " or segment size %" PRIu64
		    " does not fit the file (%zu bytes)", h->path,
		    c->header_size, c->segment_size, h->maplen);
	if (c->slot_count == 0 || c->slot_count > CS_SLOTS_MAX)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: slot count %" PRIu32 " out of range", h->path,
		    c->slot_count);
	if (c->counters_stride < CS_COUNTERS_STRIDE ||
	    c->meta_stride < CS_META_STRIDE ||
	    c->field_stride < CS_FIELD_STRIDE)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: block sizes smaller than ABI %d defines", h->path,
		    CS_ABI_MAJOR);
	if (!rd_fits(c, c->header_size, c->counters_offset, c->slot_count,
	    c->counters_stride) ||
	    !rd_fits(c, c->header_size, c->meta_offset, c->slot_count,
	    c->meta_stride) ||
	    !rd_fits(c, sizeof(struct cs_header), c->field_offset,
	    c->field_count, c->field_stride))
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: a table is misaligned or lies outside the segment",
		    h->path);
	return CAPSTATS_OK;
}

static int
rd_state_ok(struct capstats *h, uint32_t state)
{
	switch (state) {
	case CAPSTATS_SEG_READY:
		return CAPSTATS_OK;
	case CAPSTATS_SEG_CLOSED:
		return rd_fail(h, CAPSTATS_E_NOENT,
		    "daemon not running (segment %s is closed)", h->path);
	case CAPSTATS_SEG_SUPERSEDED:
		return rd_fail(h, CAPSTATS_E_RESTARTED,
		    "daemon restarting (segment %s superseded): open again",
		    h->path);
	default:
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: segment state %" PRIu32 " is not ready", h->path,
		    state);
	}
}

/* Check the mapped header and keep what never changes after READY. */
static int
rd_header(struct capstats *h)
{
	const struct cs_header *hdr = rd_hdr(h);
	struct cs_header c;
	uint32_t state;
	int rc;

	/*
	 * Pairs with the writer's release of READY. The fields copied are
	 * immutable from then on: one copy, checked, is all this handle uses.
	 */
	state = seq_acquire32(&hdr->state);
	memcpy(&c, hdr, offsetof(struct cs_header, state));
	c.heartbeat_interval_ns = hdr->heartbeat_interval_ns;
	if (memcmp(c.magic, CS_MAGIC, sizeof(c.magic)) != 0)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s is not a capstats segment (bad magic)", h->path);
	if (c.endian_mark != CS_ENDIAN_MARK)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "%s: byte order mark 0x%08" PRIx32 " is not this host's",
		    h->path, c.endian_mark);
	if (c.abi_major != CS_ABI_MAJOR)
		return rd_fail(h, CAPSTATS_E_VERSION,
		    "%s: segment ABI %u.%u, this reader knows %d.x", h->path,
		    c.abi_major, c.abi_minor, CS_ABI_MAJOR);
	if ((rc = rd_layout(h, &c)) != CAPSTATS_OK ||
	    (rc = rd_state_ok(h, state)) != CAPSTATS_OK)
		return rc;
	h->instance = c.instance_id;
	h->start_realtime_ns = c.start_realtime_ns;
	h->heartbeat_interval_ns = c.heartbeat_interval_ns;
	h->pid = c.writer_pid;
	h->nslots = c.slot_count;
	h->ctr_off = c.counters_offset;
	h->ctr_stride = c.counters_stride;
	h->meta_off = c.meta_offset;
	h->meta_stride = c.meta_stride;
	return CAPSTATS_OK;
}

static int
rd_attach(struct capstats *h, const char *name)
{
	struct stat st;
	void *p;
	int fd, rc;

	if ((rc = rd_path(h, name)) != CAPSTATS_OK)
		return rc;
	fd = open(h->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (fd == -1)
		return rd_open_fail(h);
	if (fstat(fd, &st) == -1)
		rc = rd_fail(h, CAPSTATS_E_SYS, "fstat %s: %s", h->path,
		    strerror(errno));
	else
		rc = rd_file_ok(h, &st);
	if (rc == CAPSTATS_OK) {
		p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd,
		    0);
		if (p == MAP_FAILED)
			rc = rd_fail(h, CAPSTATS_E_SYS, "mmap %s: %s", h->path,
			    strerror(errno));
		else {
			h->base = p;
			h->maplen = (size_t)st.st_size;
			h->dev = st.st_dev;
			h->ino = st.st_ino;
		}
	}
	close(fd);
	return rc == CAPSTATS_OK ? rd_header(h) : rc;
}

struct capstats *
capstats_open(const char *name, int *result,
    char errbuf[CAPSTATS_ERRBUF_SIZE])
{
	struct capstats *h;
	int rc;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		if (result != NULL)
			*result = CAPSTATS_E_SYS;
		if (errbuf != NULL)
			snprintf(errbuf, CAPSTATS_ERRBUF_SIZE, "%s",
			    strerror(errno));
		return NULL;
	}
	rc = rd_attach(h, name);
	if (result != NULL)
		*result = rc;
	if (errbuf != NULL)
		snprintf(errbuf, CAPSTATS_ERRBUF_SIZE, "%s", h->err);
	if (rc != CAPSTATS_OK) {
		capstats_close(h);
		return NULL;
	}
	return h;
}

void
capstats_close(struct capstats *h)
{
	if (h == NULL)
		return;
	if (h->base != NULL)
		munmap((void *)(uintptr_t)h->base, h->maplen);
	free(h);
}

const char *
capstats_errmsg(const struct capstats *h)
{
	return h == NULL ? "" : h->err;
}

const char *
capstats_strerror(int result)
{
	switch (result) {
	case CAPSTATS_OK:
		return "ok";
	case CAPSTATS_E_NOENT:
		return "daemon not running";
	case CAPSTATS_E_PERM:
		return "permission denied";
	case CAPSTATS_E_INVALID:
		return "not a valid capstats segment";
	case CAPSTATS_E_VERSION:
		return "incompatible segment version";
	case CAPSTATS_E_NOSESSION:
		return "no such session";
	case CAPSTATS_E_GONE:
		return "session gone";
	case CAPSTATS_E_BUSY:
		return "segment busy";
	case CAPSTATS_E_RESTARTED:
		return "daemon restarted or stopped";
	case CAPSTATS_E_STALE:
		return "daemon not responding";
	case CAPSTATS_E_SYS:
		return "system error";
	default:
		return "unknown error";
	}
}

const char *
capstats_state_name(enum capstats_state st)
{
	static const char *const names[] = {
		[CAPSTATS_FREE] = "free",
		[CAPSTATS_RUNNING] = "running",
		[CAPSTATS_ERROR] = "error",
		[CAPSTATS_STOPPED] = "stopped",
	};

	return (unsigned)st < sizeof(names) / sizeof(names[0]) ?
	    names[st] : "unknown";
}

int
capstats_daemon(struct capstats *h, struct capstats_daemon *d)
{
	const struct cs_header *hdr = rd_hdr(h);

	memset(d, 0, sizeof(*d));
	d->instance_id = h->instance;
	d->start_realtime_ns = h->start_realtime_ns;
	d->pid = h->pid;
	d->state = seq_acquire32(&hdr->state);
	d->slot_count = h->nslots;
	d->active_count = seq_acquire32(&hdr->active_count);
	d->heartbeat_ns = seq_acquire64(&hdr->heartbeat_ns);
	d->heartbeat_count = seq_acquire64(&hdr->heartbeat_count);
	d->heartbeat_interval_ns = h->heartbeat_interval_ns;
	d->dir_seq = seq_acquire64(&hdr->dir_seq);
	return CAPSTATS_OK;
}

/* Does the name still lead to the mapped file? */
static int
rd_same_file(struct capstats *h)
{
	struct stat st;

	if (stat(h->path, &st) == 0) {
		if (st.st_dev == h->dev && st.st_ino == h->ino)
			return CAPSTATS_OK;
		return rd_fail(h, CAPSTATS_E_RESTARTED,
		    "%s is now another file", h->path);
	}
	if (errno == ENOENT)
		return rd_fail(h, CAPSTATS_E_RESTARTED, "%s was removed",
		    h->path);
	return rd_fail(h, CAPSTATS_E_SYS, "stat %s: %s", h->path,
	    strerror(errno));
}

int
capstats_check(struct capstats *h, uint64_t stale_ns)
{
	const struct cs_header *hdr = rd_hdr(h);
	uint64_t beat, now;
	uint32_t state;
	int rc;

	state = seq_acquire32(&hdr->state);
	if (state == CAPSTATS_SEG_CLOSED)
		return rd_fail(h, CAPSTATS_E_RESTARTED,
		    "the daemon closed %s", h->path);
	if (state != CAPSTATS_SEG_READY)
		return rd_fail(h, CAPSTATS_E_RESTARTED,
		    "a new daemon replaced %s", h->path);
	if ((rc = rd_same_file(h)) != CAPSTATS_OK)
		return rc;
	beat = seq_acquire64(&hdr->heartbeat_ns);
	now = now_mono();
	if (stale_ns != 0 && now > beat && now - beat > stale_ns)
		return rd_fail(h, CAPSTATS_E_STALE,
		    "no heartbeat for %" PRIu64 " ms", (now - beat) / 1000000);
	return CAPSTATS_OK;
}

/* Copy SLOT's counters block; the copy is consistent, not yet checked. */
static int
rd_counters(struct capstats *h, uint32_t slot, struct capstats_snapshot *s,
    struct rd_wait *w)
{
	const struct cs_counters *k = rd_ctr(h, slot);
	uint64_t seq;

	for (;;) {
		seq = seq_read_begin(&k->seq);
		if ((seq & 1) == 0) {
			s->session_id = seq_ld64(&k->session_id);
			s->packets = seq_ld64(&k->packets);
			s->bytes = seq_ld64(&k->bytes);
			s->drops = seq_ld64(&k->drops);
			s->if_drops = seq_ld64(&k->if_drops);
			s->last_packet_ns = seq_ld64(&k->last_packet_ns);
			s->update_ns = seq_ld64(&k->update_ns);
			s->state = seq_ld32(&k->state);
			s->mode = seq_ld32(&k->mode);
			if (!seq_read_retry(&k->seq, seq))
				return CAPSTATS_OK;
		}
		if (rd_backoff(h, w) == -1)
			return rd_busy(h, slot);
	}
}

/* Copy SLOT's meta block; FULL adds the filter and error texts. */
static int
rd_meta_copy(struct capstats *h, uint32_t slot, struct capstats_info *in,
    bool full, struct rd_wait *w)
{
	const struct cs_meta *m = rd_meta_at(h, slot);
	uint64_t seq;

	for (;;) {
		seq = seq_read_begin(&m->seq);
		if ((seq & 1) == 0) {
			in->session_id = seq_ld64(&m->session_id);
			in->state = seq_ld32(&m->state);
			in->mode = seq_ld32(&m->mode);
			in->flags = seq_ld32(&m->flags);
			in->created_ns = seq_ld64(&m->created_ns);
			in->modified_ns = seq_ld64(&m->modified_ns);
			in->config_gen = seq_ld64(&m->config_gen);
			seq_get_text(m->name, CS_NAME_WORDS, in->name);
			seq_get_text(m->iface, CS_IFACE_WORDS, in->iface);
			if (full) {
				seq_get_text(m->filter, CS_FILTER_WORDS,
				    in->filter);
				seq_get_text(m->error, CS_ERROR_WORDS,
				    in->error);
			}
			if (!seq_read_retry(&m->seq, seq))
				return CAPSTATS_OK;
		}
		if (rd_backoff(h, w) == -1)
			return rd_busy(h, slot);
	}
}

/* Terminate TEXT[SIZE] in any case; was it terminated already? */
static bool
rd_text(char *text, size_t size)
{
	bool ok = memchr(text, '\0', size) != NULL;

	text[size - 1] = '\0';
	return ok;
}

/* A checked copy of SLOT's description; strings always terminated. */
static int
rd_meta(struct capstats *h, uint32_t slot, struct capstats_info *in,
    bool full, struct rd_wait *w)
{
	bool ok;
	int rc;

	in->filter[0] = in->error[0] = '\0';
	rc = rd_meta_copy(h, slot, in, full, w);
	ok = rd_text(in->name, sizeof(in->name));
	ok = rd_text(in->iface, sizeof(in->iface)) && ok;
	ok = rd_text(in->filter, sizeof(in->filter)) && ok;
	ok = rd_text(in->error, sizeof(in->error)) && ok;
	in->slot = slot;
	if (rc != CAPSTATS_OK)
		return rc;
	if (!ok || in->state > CAPSTATS_STOPPED)
		return rd_fail(h, CAPSTATS_E_INVALID,
		    "slot %" PRIu32 ": malformed description", slot);
	return CAPSTATS_OK;
}

int
capstats_find(struct capstats *h, const char *name, struct capstats_ref *ref)
{
	struct capstats_info in;
	struct rd_wait w = { 0 };
	uint32_t i, hw = rd_high_water(h);
	bool busy = false;
	int rc;

	for (i = 0; name != NULL && i < hw; i++) {
		rc = rd_meta(h, i, &in, false, &w);
		busy = busy || rc == CAPSTATS_E_BUSY;
		if (rc == CAPSTATS_OK && rd_live(in.state) &&
		    strcmp(in.name, name) == 0) {
			ref->slot = i;
			ref->session_id = in.session_id;
			return CAPSTATS_OK;
		}
	}
	if (busy)
		return CAPSTATS_E_BUSY;
	return rd_fail(h, CAPSTATS_E_NOSESSION, "no running session \"%.*s\"",
	    CAPSTATS_NAME_MAX, name == NULL ? "" : name);
}

/*
 * On CAPSTATS_E_BUSY or CAPSTATS_E_INVALID, REF names the slot that could
 * not be read, so that the next call goes on past it.
 */
int
capstats_next(struct capstats *h, struct capstats_ref *ref,
    struct capstats_info *info)
{
	struct rd_wait w = { 0 };
	uint32_t i, hw = rd_high_water(h);
	int rc;

	i = ref->slot == UINT32_MAX ? 0 : ref->slot + 1;
	for (; i < hw; i++) {
		rc = rd_meta(h, i, info, true, &w);
		if (rc != CAPSTATS_OK || rd_live(info->state)) {
			ref->slot = i;
			ref->session_id = rc == CAPSTATS_OK ?
			    info->session_id : 0;
			return rc;
		}
	}
	return rd_fail(h, CAPSTATS_E_NOSESSION, "no more sessions");
}

int
capstats_read(struct capstats *h, const struct capstats_ref *ref,
    struct capstats_snapshot *snap)
{
	struct rd_wait w = { 0 };
	int rc;

	if (ref->slot >= h->nslots)
		return rd_fail(h, CAPSTATS_E_GONE, "slot %" PRIu32
		    ": no such entry", ref->slot);
	if ((rc = rd_counters(h, ref->slot, snap, &w)) != CAPSTATS_OK)
		return rc;
	if (snap->session_id == 0 || snap->session_id != ref->session_id ||
	    snap->state == CAPSTATS_FREE)
		return rd_fail(h, CAPSTATS_E_GONE, "slot %" PRIu32
		    ": session %" PRIu64 " is gone", ref->slot,
		    ref->session_id);
	if (snap->state > CAPSTATS_STOPPED)
		return rd_fail(h, CAPSTATS_E_INVALID, "slot %" PRIu32
		    ": state %" PRIu32 " unknown", ref->slot, snap->state);
	return CAPSTATS_OK;
}

int
capstats_info(struct capstats *h, const struct capstats_ref *ref,
    struct capstats_info *info)
{
	struct rd_wait w = { 0 };
	int rc;

	if (ref->slot >= h->nslots)
		return rd_fail(h, CAPSTATS_E_GONE, "slot %" PRIu32
		    ": no such entry", ref->slot);
	rc = rd_meta(h, ref->slot, info, true, &w);
	if (rc == CAPSTATS_OK && (info->session_id == 0 ||
	    info->session_id != ref->session_id))
		return rd_fail(h, CAPSTATS_E_GONE, "slot %" PRIu32
		    ": session %" PRIu64 " is gone", ref->slot,
		    ref->session_id);
	return rc;
}
