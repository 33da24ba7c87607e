/*
 * seed_segment.c: writes fuzz_segment's seeds into DIR. Segments made by
 * the real writer with a few sessions, copied from /dev/shm after the
 * reader has opened them; then variants cut short or with one header or
 * slot field changed. Needs root, as the reader does to accept a segment.
 * Usage: seed_segment DIR
 */
#include "../../shm/writer.c"
#include "../../shm/reader.c"

#define SEED_HB_NS	(100 * 1000000ull)

static const char *seed_dir;
static char seed_name[64];

static void __attribute__((noreturn, format(printf, 1, 2)))
seed_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "seed_segment: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/*
 * One seed: the file size, then the first LEN bytes of IMG without the
 * zeros that end them, which fuzz_segment pads back.
 */
static void
seed_put(const char *what, const unsigned char *img, size_t len,
    uint32_t fsize)
{
	unsigned char le[4] = { fsize, fsize >> 8, fsize >> 16, fsize >> 24 };
	char path[512];
	FILE *f;

	while (len > 0 && img[len - 1] == 0)
		len--;
	snprintf(path, sizeof(path), "%s/%s", seed_dir, what);
	if ((f = fopen(path, "w")) == NULL)
		seed_fail("%s: %s", path, strerror(errno));
	if (fwrite(le, 1, 4, f) != 4 || fwrite(img, 1, len, f) != len ||
	    fclose(f) != 0)
		seed_fail("%s: write failed", path);
}

/* A session started the way sess.c starts one; returns its slot. */
static uint32_t
seed_session(struct shmw *w, uint32_t state, const char *name,
    const char *iface, const char *filter, const char *error,
    uint64_t packets)
{
	struct shmw_desc d = {
		.state = state, .mode = CAPSTATS_MODE_PCAP,
		.created_ns = 1700000000ull * 1000000000u,
		.modified_ns = 1700000000ull * 1000000000u,
		.name = name, .iface = iface, .filter = filter, .error = error,
	};
	struct shmw_counts c = {
		.packets = packets, .bytes = packets * 100, .drops = packets / 7,
		.if_drops = 1, .last_packet_ns = d.created_ns + packets,
		.state = state, .mode = CAPSTATS_MODE_PCAP,
	};
	int slot;

	if ((slot = shmw_alloc(w, now_mono())) == -1)
		seed_fail("no slot for %s", name);
	shmw_start(w, (uint32_t)slot, &d);
	shmw_publish(w, (uint32_t)slot, &c);
	return (uint32_t)slot;
}

/* The bytes of the segment, as any reader would find them. */
static unsigned char *
seed_copy(size_t *len)
{
	char path[128], err[CAPSTATS_ERRBUF_SIZE];
	struct capstats_ref ref;
	struct capstats *h;
	unsigned char *img;
	struct stat st;
	int fd, rc;

	if ((h = capstats_open(seed_name, &rc, err)) == NULL)
		seed_fail("the writer's segment does not open: %s", err);
	if (capstats_find(h, "web", &ref) != CAPSTATS_OK)
		seed_fail("the writer's segment lacks session web: %s",
		    capstats_errmsg(h));
	capstats_close(h);
	snprintf(path, sizeof(path), "/dev/shm/%s", seed_name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		seed_fail("%s: %s", path, strerror(errno));
	*len = (size_t)st.st_size;
	if ((img = malloc(*len)) == NULL ||
	    read(fd, img, *len) != (ssize_t)*len)
		seed_fail("%s: cannot read it", path);
	close(fd);
	return img;
}

/* A segment from the writer: SLOTS entries, the sessions a daemon has. */
static unsigned char *
seed_segment(uint32_t slots, bool all, size_t *len)
{
	char err[256], filter[301];
	unsigned char *img;
	struct shmw *w;
	uint32_t slot;

	if ((w = shmw_create(seed_name, 0, slots, SEED_HB_NS, err,
	    sizeof(err))) == NULL)
		seed_fail("shmw_create: %s", err);
	seed_session(w, CAPSTATS_RUNNING, "web", "eth0", "udp port 123", "",
	    1000);
	seed_session(w, CAPSTATS_ERROR, "bad", "eth9", "tcp",
	    "eth9: no such device", 5);
	if (all) {
		/* Stopped, then a filter longer than the segment keeps. */
		slot = seed_session(w, CAPSTATS_RUNNING, "old", "lo", "", "", 7);
		shmw_stop(w, slot, &(struct shmw_counts){ .packets = 8,
		    .state = CAPSTATS_STOPPED }, now_mono());
		memset(filter, 'p', sizeof(filter) - 1);
		filter[sizeof(filter) - 1] = '\0';
		slot = seed_session(w, CAPSTATS_RUNNING, "long", "eth0", filter,
		    "", 1);
		shmw_describe(w, slot, &(struct shmw_desc){
		    .state = CAPSTATS_RUNNING, .modified_ns = 1, .name = "long",
		    .iface = "eth0", .filter = "tcp or udp" });
	}
	img = seed_copy(len);
	shmw_destroy(w);
	return img;
}

/* A copy of the image with one change, for the variants below. */
static unsigned char *
seed_dup(const unsigned char *img, size_t len)
{
	unsigned char *v = malloc(len);

	if (v == NULL)
		seed_fail("out of memory");
	memcpy(v, img, len);
	return v;
}

#define HDR(v)		((struct cs_header *)(void *)(v))
#define CTR(v, i)	((struct cs_counters *)(void *)((v) + HDR(v)->counters_offset) + (i))
#define META(v, i)	((struct cs_meta *)(void *)((v) + HDR(v)->meta_offset) + (i))

/* Header fields a reader must refuse: only the header page matters. */
static void
seed_header_variants(const unsigned char *img, size_t len)
{
	unsigned char *v = seed_dup(img, len);
	uint32_t size = (uint32_t)len;

#define VARIANT(what, change) do {					\
	memcpy(v, img, len);						\
	change;								\
	seed_put(what, v, CS_HEADER_SIZE, size);			\
} while (0)
	VARIANT("hdr-magic", v[0] ^= 0x20);
	VARIANT("hdr-abi-major", HDR(v)->abi_major = CS_ABI_MAJOR + 1);
	VARIANT("hdr-endian", HDR(v)->endian_mark = __builtin_bswap32(CS_ENDIAN_MARK));
	VARIANT("hdr-header-size", HDR(v)->header_size = 64);
	VARIANT("hdr-segment-size", HDR(v)->segment_size = len + 8);
	VARIANT("hdr-slot-count", HDR(v)->slot_count = CS_SLOTS_MAX + 1);
	VARIANT("hdr-counters-misaligned", HDR(v)->counters_offset += 4);
	VARIANT("hdr-meta-outside", HDR(v)->meta_offset = len);
	VARIANT("hdr-field-count", HDR(v)->field_count = UINT32_MAX);
	VARIANT("hdr-state-init", HDR(v)->state = CAPSTATS_SEG_INIT);
	VARIANT("hdr-state-closed", HDR(v)->state = CAPSTATS_SEG_CLOSED);
	VARIANT("hdr-state-superseded", HDR(v)->state = CAPSTATS_SEG_SUPERSEDED);
#undef VARIANT
	free(v);
}

/* Slot fields: the header is sound, so these reach the slot reads. */
static void
seed_slot_variants(const unsigned char *img, size_t len)
{
	unsigned char *v = seed_dup(img, len);
	uint32_t size = (uint32_t)len;

#define VARIANT(what, change) do {					\
	memcpy(v, img, len);						\
	change;								\
	seed_put(what, v, len, size);					\
} while (0)
	VARIANT("slot-high-water", HDR(v)->high_water = UINT32_MAX);
	VARIANT("slot-counters-odd", CTR(v, 0)->seq |= 1);
	VARIANT("slot-meta-odd", META(v, 1)->seq |= 1);
	VARIANT("slot-name-unterminated",
	    memset((void *)META(v, 0)->name, 'A', sizeof(META(v, 0)->name)));
	VARIANT("slot-meta-state", META(v, 0)->state = 9);
	VARIANT("slot-counters-id", CTR(v, 0)->session_id += 100);
	VARIANT("slot-counters-free", CTR(v, 1)->state = CAPSTATS_FREE);
	VARIANT("slot-same-name", memcpy((void *)META(v, 1)->name, "web", 4));
#undef VARIANT
	free(v);
}

int
main(int argc, char **argv)
{
	unsigned char *img;
	size_t len;

	if (argc != 2) {
		fprintf(stderr, "usage: seed_segment DIR\n");
		return 2;
	}
	seed_dir = argv[1];
	snprintf(seed_name, sizeof(seed_name), "capstats-seed-%ld",
	    (long)getpid());
	img = seed_segment(16, false, &len);
	seed_put("valid-16slots", img, len, (uint32_t)len);
	free(img);
	img = seed_segment(4, true, &len);
	seed_put("valid-4slots", img, len, (uint32_t)len);
	seed_put("cut-in-header", img, 100, 100);
	seed_put("cut-after-header", img, CS_HEADER_SIZE, CS_HEADER_SIZE);
	seed_put("cut-in-meta", img, len - 1000, (uint32_t)len - 1000);
	seed_header_variants(img, len);
	seed_slot_variants(img, len);
	free(img);
	return 0;
}
