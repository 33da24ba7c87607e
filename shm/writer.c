/*
 * writer.c: the daemon's side of the segment. It builds the file under a
 * random name, publishes it by rename(2), and writes sessions into it under
 * their seqlocks. Between shmw_create() and shmw_destroy() it neither
 * allocates nor makes a system call: the only clock it reads (update_ns)
 * is clock_gettime(3) from the vDSO. Calls for one segment must come from
 * one thread at a time.
 */
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "layout.h"
#include "seqlock.h"
#include "writer.h"

#define WR_DIR		"/dev/shm/"
#define WR_NAME_MAX	200
#define WR_PAGE		4096u
#define WR_MODE		0640

/* What the writer knows of a slot; it never reads the segment back. */
enum wr_use { WR_FREE, WR_ACTIVE, WR_STOPPED };

struct wr_slot {
	uint64_t	session_id;
	uint64_t	stopped_ns;	/* CLOCK_MONOTONIC, shmw_stop() */
	uint64_t	modified_ns;	/* as last described */
	uint64_t	config_gen;
	uint8_t		use;		/* enum wr_use */
	bool		taken;		/* by shmw_alloc(), not started */
};

struct shmw {
	char			 path[sizeof(WR_DIR) + WR_NAME_MAX];
	char			 tmp[sizeof(WR_DIR) + WR_NAME_MAX + 18];
	unsigned char		*base;
	size_t			 size;
	dev_t			 dev;
	ino_t			 ino;
	struct cs_header	*hdr;
	struct cs_counters	*ctr;
	struct cs_meta		*meta;
	uint32_t		 nslots;
	uint32_t		 high_water;
	uint32_t		 active;
	uint64_t		 instance;
	uint64_t		 next_id;
	uint64_t		 beats;
	struct wr_slot		*slot;
	char			 vacated[2 * (sizeof(WR_DIR) + WR_NAME_MAX) + 128];
					/* what held our name, for the log */
};

/* The counter fields, as the segment describes them to generic readers. */
static const struct cs_field wr_fields[] = {
	{ "packets", offsetof(struct cs_counters, packets), CS_TYPE_U64,
	    CS_UNIT_PACKETS },
	{ "bytes", offsetof(struct cs_counters, bytes), CS_TYPE_U64,
	    CS_UNIT_BYTES },
	{ "drops", offsetof(struct cs_counters, drops), CS_TYPE_U64,
	    CS_UNIT_PACKETS },
	{ "if_drops", offsetof(struct cs_counters, if_drops), CS_TYPE_U64,
	    CS_UNIT_PACKETS },
	{ "last_packet_ns", offsetof(struct cs_counters, last_packet_ns),
	    CS_TYPE_U64, CS_UNIT_NS_REALTIME },
	{ "update_ns", offsetof(struct cs_counters, update_ns), CS_TYPE_U64,
	    CS_UNIT_NS_MONOTONIC },
	{ "state", offsetof(struct cs_counters, state), CS_TYPE_U32,
	    CS_UNIT_NONE },
	{ "mode", offsetof(struct cs_counters, mode), CS_TYPE_U32,
	    CS_UNIT_NONE },
};
#define WR_NFIELDS	(sizeof(wr_fields) / sizeof(wr_fields[0]))

static_assert(CS_FIELD_OFFSET + WR_NFIELDS * CS_FIELD_STRIDE <= CS_HEADER_SIZE,
    "the field table fits in the header page");

static void wr_err(char *, size_t, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static void
wr_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int
wr_random(uint64_t *v)
{
	ssize_t n;

	do
		n = getrandom(v, sizeof(*v), 0);
	while (n == -1 && errno == EINTR);
	return n == (ssize_t)sizeof(*v) ? 0 : -1;
}

static size_t
wr_round(size_t n)
{
	return (n + WR_PAGE - 1) / WR_PAGE * WR_PAGE;
}

/* "capstats" or "/capstats": one path component of at most WR_NAME_MAX. */
static int
wr_path(const char *name, char *path, size_t len)
{
	size_t n;

	if (name == NULL)
		return -1;
	if (name[0] == '/')
		name++;
	n = strlen(name);
	if (n == 0 || n > WR_NAME_MAX || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -1;
	snprintf(path, len, "%s%s", WR_DIR, name);
	return 0;
}

/* Create the temporary file: ours alone, since the directory is shared. */
static int
wr_open_tmp(struct shmw *w, char *err, size_t errlen)
{
	const char *name = w->path + strlen(WR_DIR);
	uint64_t r;
	int fd = -1, tries;

	for (tries = 0; tries < 4; tries++) {
		if (wr_random(&r) == -1) {
			wr_err(err, errlen, "getrandom: %s", strerror(errno));
			return -1;
		}
		snprintf(w->tmp, sizeof(w->tmp), "%s.%s.%016" PRIx64, WR_DIR,
		    name, r);
		fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, WR_MODE);
		if (fd != -1 || errno != EEXIST)
			break;
	}
	if (fd == -1) {
		wr_err(err, errlen, "create %s: %s", w->tmp, strerror(errno));
		w->tmp[0] = '\0';
	}
	return fd;
}

/* Owner, mode and every page, so a full tmpfs fails now, not with SIGBUS. */
static int
wr_prepare(struct shmw *w, int fd, gid_t gid, char *err, size_t errlen)
{
	struct stat st;
	int e;

	if (fchown(fd, 0, gid) == -1 || fchmod(fd, WR_MODE) == -1) {
		wr_err(err, errlen, "%s: set owner 0:%ld mode %o: %s", w->tmp,
		    (long)gid, WR_MODE, strerror(errno));
		return -1;
	}
	if ((e = posix_fallocate(fd, 0, (off_t)w->size)) != 0) {
		wr_err(err, errlen, "%s: allocate %zu bytes: %s%s", w->tmp,
		    w->size, strerror(e), e == ENOSPC ?
		    " (/dev/shm is full or too small)" : "");
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		wr_err(err, errlen, "fstat %s: %s", w->tmp, strerror(errno));
		return -1;
	}
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	return 0;
}

static int
wr_map(struct shmw *w, int fd, char *err, size_t errlen)
{
	void *p;

	p = mmap(NULL, w->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		wr_err(err, errlen, "mmap %s: %s", w->tmp, strerror(errno));
		return -1;
	}
	w->base = p;
	/* Best effort: counters stay fast under memory pressure if it works. */
	(void)mlock(w->base, w->size);
	return 0;
}

/*
 * The immutable part of the header. The file is new, so every other byte
 * (slots, reserved space) already reads as zero.
 */
static void
wr_fill(struct shmw *w, uint64_t heartbeat_ns)
{
	struct cs_header *h = w->hdr;
	uint64_t cto = CS_HEADER_SIZE;
	uint64_t mto = cto + wr_round((size_t)w->nslots * CS_COUNTERS_STRIDE);

	memcpy(h->magic, CS_MAGIC, sizeof(h->magic));
	h->abi_major = CS_ABI_MAJOR;
	h->abi_minor = CS_ABI_MINOR;
	h->header_size = CS_HEADER_SIZE;
	h->endian_mark = CS_ENDIAN_MARK;
	h->instance_id = w->instance;
	h->start_realtime_ns = now_real();
	h->start_monotonic_ns = now_mono();
	h->writer_pid = (uint32_t)getpid();
	h->segment_size = w->size;
	h->slot_count = w->nslots;
	h->counters_stride = CS_COUNTERS_STRIDE;
	h->counters_offset = cto;
	h->meta_stride = CS_META_STRIDE;
	h->meta_offset = mto;
	h->field_count = WR_NFIELDS;
	h->field_stride = CS_FIELD_STRIDE;
	h->field_offset = CS_FIELD_OFFSET;
	h->heartbeat_interval_ns = heartbeat_ns;
	memcpy(w->base + CS_FIELD_OFFSET, wr_fields, sizeof(wr_fields));
	w->ctr = (struct cs_counters *)(void *)(w->base + cto);
	w->meta = (struct cs_meta *)(void *)(w->base + mto);
}

/* Is this fstat() that of a segment a capstats daemon made? */
static bool
wr_genuine_file(const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_uid == 0 && st->st_nlink == 1 &&
	    st->st_size >= (off_t)CS_HEADER_SIZE;
}

/*
 * Tell the readers of the segment now at our name that it is replaced.
 * Anything that is not a genuine segment is left untouched: rename(2)
 * replaces the name without writing through it.
 */
static void
wr_supersede(const char *path)
{
	struct cs_header *h;
	struct stat st;
	void *p;
	int fd;

	fd = open(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (fd == -1)
		return;
	if (fstat(fd, &st) == -1 || !wr_genuine_file(&st)) {
		close(fd);
		return;
	}
	p = mmap(NULL, CS_HEADER_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    0);
	close(fd);
	if (p == MAP_FAILED)
		return;
	h = p;
	if (memcmp(h->magic, CS_MAGIC, sizeof(h->magic)) == 0 &&
	    h->endian_mark == CS_ENDIAN_MARK && h->abi_major == CS_ABI_MAJOR)
		seq_publish32(&h->state, CAPSTATS_SEG_SUPERSEDED);
	munmap(p, CS_HEADER_SIZE);
}

static const char *
wr_kind(mode_t mode)
{
	return S_ISDIR(mode) ? "directory" : S_ISREG(mode) ? "file" :
	    S_ISLNK(mode) ? "symbolic link" : S_ISFIFO(mode) ? "fifo" :
	    S_ISSOCK(mode) ? "socket" : "special file";
}

/*
 * Make room for the segment at PATH. /dev/shm is anyone's to write in, so
 * anyone may have put something at the segment's name first: rename(2)
 * replaces anything but a directory, and a directory is removed, or, when
 * it holds something, moved aside beside it. Says in W->vacated what was
 * there and whose, unless it was a segment of a daemon before.
 */
static int
wr_vacate(struct shmw *w, char *err, size_t errlen)
{
	char aside[sizeof(w->path) + 32];
	struct stat st;

	if (lstat(w->path, &st) == -1 || wr_genuine_file(&st))
		return 0;
	snprintf(w->vacated, sizeof(w->vacated), "%s: replaced a %s of uid %u "
	    "gid %u", w->path, wr_kind(st.st_mode), (unsigned)st.st_uid,
	    (unsigned)st.st_gid);
	if (!S_ISDIR(st.st_mode) || rmdir(w->path) == 0)
		return 0;
	snprintf(aside, sizeof(aside), "%s.squatted.%016" PRIx64, w->path,
	    w->instance);
	if (rename(w->path, aside) == -1) {
		wr_err(err, errlen, "%s is a directory of uid %u, which cannot "
		    "be moved aside: %s", w->path, (unsigned)st.st_uid,
		    strerror(errno));
		return -1;
	}
	snprintf(w->vacated, sizeof(w->vacated), "%s: a directory of uid %u "
	    "gid %u was there; moved to %s", w->path, (unsigned)st.st_uid,
	    (unsigned)st.st_gid, aside);
	return 0;
}

const char *
shmw_vacated(const struct shmw *w)
{
	return w->vacated[0] != '\0' ? w->vacated : NULL;
}

static void
wr_free(struct shmw *w)
{
	if (w->base != NULL)
		munmap(w->base, w->size);
	if (w->tmp[0] != '\0')
		unlink(w->tmp);
	free(w->slot);
	free(w);
}

/* Make, fill and map the temporary file, ready but not yet published. */
static int
wr_build(struct shmw *w, gid_t gid, uint64_t heartbeat_ns, char *err,
    size_t errlen)
{
	int fd, rc;

	do {
		if (wr_random(&w->instance) == -1) {
			wr_err(err, errlen, "getrandom: %s", strerror(errno));
			return -1;
		}
	} while (w->instance == 0);
	if ((fd = wr_open_tmp(w, err, errlen)) == -1)
		return -1;
	rc = wr_prepare(w, fd, gid, err, errlen);
	if (rc == 0)
		rc = wr_map(w, fd, err, errlen);
	close(fd);
	if (rc == -1)
		return -1;
	w->hdr = (struct cs_header *)(void *)w->base;
	wr_fill(w, heartbeat_ns);
	shmw_heartbeat(w, now_mono());
	seq_publish32(&w->hdr->state, CAPSTATS_SEG_READY);
	return 0;
}

struct shmw *
shmw_create(const char *name, gid_t gid, uint32_t slots,
    uint64_t heartbeat_ns, char *err, size_t errlen)
{
	struct shmw *w;

	if (slots == 0 || slots > CS_SLOTS_MAX) {
		wr_err(err, errlen, "%" PRIu32 " slots: must be 1 to %u", slots,
		    CS_SLOTS_MAX);
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->slot = calloc(slots, sizeof(*w->slot))) == NULL) {
		wr_err(err, errlen, "shared memory: %s", strerror(errno));
		free(w);
		return NULL;
	}
	w->nslots = slots;
	w->next_id = 1;
	w->size = CS_HEADER_SIZE +
	    wr_round((size_t)slots * CS_COUNTERS_STRIDE) +
	    wr_round((size_t)slots * CS_META_STRIDE);
	if (wr_path(name, w->path, sizeof(w->path)) == -1) {
		wr_err(err, errlen, "bad shared memory name \"%s\"",
		    name == NULL ? "" : name);
		wr_free(w);
		return NULL;
	}
	if (wr_build(w, gid, heartbeat_ns, err, errlen) == -1) {
		wr_free(w);
		return NULL;
	}
	wr_supersede(w->path);
	if (wr_vacate(w, err, errlen) == -1) {
		wr_free(w);
		return NULL;
	}
	if (rename(w->tmp, w->path) == -1) {
		wr_err(err, errlen, "rename %s to %s: %s", w->tmp, w->path,
		    strerror(errno));
		wr_free(w);
		return NULL;
	}
	w->tmp[0] = '\0';
	return w;
}

void
shmw_destroy(struct shmw *w)
{
	struct stat st;

	if (w == NULL)
		return;
	/* A newer daemon's SUPERSEDED is the truer word for our readers. */
	(void)seq_swap32(&w->hdr->state, CAPSTATS_SEG_READY,
	    CAPSTATS_SEG_CLOSED);
	if (stat(w->path, &st) == 0 && st.st_dev == w->dev &&
	    st.st_ino == w->ino)
		unlink(w->path);
	wr_free(w);
}

uint64_t
shmw_instance(const struct shmw *w)
{
	return w->instance;
}

uint32_t
shmw_slots(const struct shmw *w)
{
	return w->nslots;
}

void
shmw_heartbeat(struct shmw *w, uint64_t now_ns)
{
	seq_publish64(&w->hdr->heartbeat_ns, now_ns);
	seq_publish64(&w->hdr->heartbeat_count, ++w->beats);
}

static bool
wr_reusable(const struct wr_slot *s, uint64_t now_ns)
{
	return s->use == WR_STOPPED && !s->taken && now_ns >= s->stopped_ns &&
	    now_ns - s->stopped_ns >= SHMW_REUSE_NS;
}

int
shmw_alloc(struct shmw *w, uint64_t now_ns)
{
	uint32_t i;
	int best = -1;

	for (i = 0; i < w->nslots; i++)
		if (w->slot[i].use == WR_FREE && !w->slot[i].taken) {
			best = (int)i;
			break;
		}
	/* Else the entry stopped longest ago: late readers see it longest. */
	for (i = 0; best == -1 && i < w->nslots; i++)
		if (wr_reusable(&w->slot[i], now_ns))
			best = (int)i;
	for (; best != -1 && i < w->nslots; i++)
		if (wr_reusable(&w->slot[i], now_ns) &&
		    w->slot[i].stopped_ns < w->slot[best].stopped_ns)
			best = (int)i;
	if (best != -1)
		w->slot[best].taken = true;
	return best;
}

void
shmw_release(struct shmw *w, uint32_t slot)
{
	/* A started slot is no longer taken: nothing to undo. */
	if (slot < w->nslots)
		w->slot[slot].taken = false;
}

/* The meta block of SLOT from D, under its seqlock. */
static void
wr_meta(struct shmw *w, uint32_t slot, const struct shmw_desc *d)
{
	const struct wr_slot *s = &w->slot[slot];
	struct cs_meta *m = &w->meta[slot];
	uint32_t flags = d->flags & ~(uint32_t)CAPSTATS_F_FILTER_TRUNCATED;
	uint64_t odd;

	odd = seq_write_begin(&m->seq);
	seq_st64(&m->session_id, s->session_id);
	seq_st32(&m->state, d->state);
	seq_st32(&m->mode, d->mode);
	seq_st64(&m->created_ns, d->created_ns);
	seq_st64(&m->modified_ns, d->modified_ns);
	seq_st64(&m->config_gen, s->config_gen);
	seq_put_text(m->name, CS_NAME_WORDS, d->name);
	seq_put_text(m->iface, CS_IFACE_WORDS, d->iface);
	seq_put_text(m->error, CS_ERROR_WORDS, d->error);
	if (seq_put_text(m->filter, CS_FILTER_WORDS, d->filter))
		flags |= CAPSTATS_F_FILTER_TRUNCATED;
	seq_st32(&m->flags, flags);
	seq_write_end(&m->seq, odd);
}

/* The counters block of SLOT, under its seqlock. */
static void
wr_counts(struct shmw *w, uint32_t slot, const struct shmw_counts *c,
    uint32_t state, uint64_t now_ns)
{
	struct cs_counters *k = &w->ctr[slot];
	uint64_t id = w->slot[slot].session_id, odd;

	odd = seq_write_begin(&k->seq);
	seq_st64(&k->session_id, id);
	seq_st64(&k->packets, c->packets);
	seq_st64(&k->bytes, c->bytes);
	seq_st64(&k->drops, c->drops);
	seq_st64(&k->if_drops, c->if_drops);
	seq_st64(&k->last_packet_ns, c->last_packet_ns);
	seq_st64(&k->update_ns, now_ns);
	seq_st32(&k->state, state);
	seq_st32(&k->mode, c->mode);
	seq_write_end(&k->seq, odd);
}

uint64_t
shmw_start(struct shmw *w, uint32_t slot, const struct shmw_desc *d)
{
	const struct shmw_counts zero = { .state = d->state, .mode = d->mode };
	struct wr_slot *s;
	uint64_t dir, now = now_mono();

	if (slot >= w->nslots || w->slot[slot].use == WR_ACTIVE)
		return 0;
	s = &w->slot[slot];
	s->session_id = w->next_id++;
	s->use = WR_ACTIVE;
	s->taken = false;
	s->modified_ns = d->modified_ns;
	s->config_gen = 0;
	dir = seq_write_begin(&w->hdr->dir_seq);
	wr_meta(w, slot, d);
	wr_counts(w, slot, &zero, d->state, now);
	if (slot >= w->high_water) {
		w->high_water = slot + 1;
		seq_publish32(&w->hdr->high_water, w->high_water);
	}
	seq_publish32(&w->hdr->active_count, ++w->active);
	seq_write_end(&w->hdr->dir_seq, dir);
	return s->session_id;
}

void
shmw_describe(struct shmw *w, uint32_t slot, const struct shmw_desc *d)
{
	struct wr_slot *s;
	uint64_t dir;

	if (slot >= w->nslots || w->slot[slot].use != WR_ACTIVE)
		return;
	s = &w->slot[slot];
	if (d->modified_ns != s->modified_ns) {
		s->modified_ns = d->modified_ns;
		s->config_gen++;
	}
	dir = seq_write_begin(&w->hdr->dir_seq);
	wr_meta(w, slot, d);
	seq_write_end(&w->hdr->dir_seq, dir);
}

void
shmw_publish(struct shmw *w, uint32_t slot, const struct shmw_counts *c)
{
	uint64_t now;

	if (slot >= w->nslots || w->slot[slot].use != WR_ACTIVE)
		return;
	now = now_mono();
	wr_counts(w, slot, c, c->state, now);
}

void
shmw_stop(struct shmw *w, uint32_t slot, const struct shmw_counts *c,
    uint64_t now_ns)
{
	struct cs_meta *m;
	uint64_t dir, odd, now = now_mono();

	if (slot >= w->nslots || w->slot[slot].use != WR_ACTIVE)
		return;
	m = &w->meta[slot];
	dir = seq_write_begin(&w->hdr->dir_seq);
	wr_counts(w, slot, c, CAPSTATS_STOPPED, now);
	odd = seq_write_begin(&m->seq);
	seq_st32(&m->state, CAPSTATS_STOPPED);
	seq_write_end(&m->seq, odd);
	seq_publish32(&w->hdr->active_count, --w->active);
	seq_write_end(&w->hdr->dir_seq, dir);
	w->slot[slot].use = WR_STOPPED;
	w->slot[slot].stopped_ns = now_ns;
}
