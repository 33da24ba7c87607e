/*
 * layout.h: the byte layout of the capstats segment (ABI major 1).
 * shm/ABI.md and capstats-shm(7) document every offset below; the static
 * assertions at the end keep this file and those documents in step.
 * Every shared word is a naturally aligned 64- or 32-bit atomic.
 */
#ifndef CAPSTATS_LAYOUT_H
#define CAPSTATS_LAYOUT_H

#include <assert.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "capstats.h"

#define CS_MAGIC		"CAPSTATS"
#define CS_ABI_MAJOR		1
#define CS_ABI_MINOR		0
#define CS_ENDIAN_MARK		0x01020304u
#define CS_HEADER_SIZE		4096u
#define CS_COUNTERS_STRIDE	128u
#define CS_META_STRIDE		512u
#define CS_FIELD_STRIDE		32u
#define CS_FIELD_OFFSET		1024u
#define CS_SLOTS_DEFAULT	1024u
#define CS_SLOTS_MAX		65536u

typedef _Atomic uint64_t	cs_u64;
typedef _Atomic uint32_t	cs_u32;

/* Offset 0: written once before the segment is published, then immutable. */
struct cs_header {
	char		magic[8];		/*   0 "CAPSTATS" */
	uint16_t	abi_major;		/*   8 */
	uint16_t	abi_minor;		/*  10 */
	uint32_t	header_size;		/*  12 */
	uint32_t	endian_mark;		/*  16 0x01020304 */
	uint32_t	flags;			/*  20 */
	uint64_t	instance_id;		/*  24 random, never 0 */
	uint64_t	start_realtime_ns;	/*  32 */
	uint64_t	start_monotonic_ns;	/*  40 */
	uint32_t	writer_pid;		/*  48 */
	uint32_t	reserved0;		/*  52 */
	uint64_t	segment_size;		/*  56 */
	uint32_t	slot_count;		/*  64 */
	uint32_t	counters_stride;	/*  68 */
	uint64_t	counters_offset;	/*  72 */
	uint32_t	meta_stride;		/*  80 */
	uint32_t	reserved1;		/*  84 */
	uint64_t	meta_offset;		/*  88 */
	uint32_t	field_count;		/*  96 */
	uint32_t	field_stride;		/* 100 */
	uint64_t	field_offset;		/* 104 */
	uint8_t		reserved2[16];		/* 112 */
	/* 128: liveness, on its own line */
	cs_u32		state;			/* 128 enum capstats_seg_state */
	uint32_t	reserved3;		/* 132 */
	cs_u64		heartbeat_ns;		/* 136 CLOCK_MONOTONIC */
	cs_u64		heartbeat_count;	/* 144 */
	uint64_t	heartbeat_interval_ns;	/* 152 */
	uint8_t		reserved4[32];		/* 160 */
	/* 192: the directory, on its own line */
	cs_u64		dir_seq;		/* 192 */
	cs_u32		high_water;		/* 200 slots below this may be in use */
	cs_u32		active_count;		/* 204 running or failed sessions */
	uint8_t		reserved5[48];		/* 208 */
};

/* The table of counter fields, at field_offset: the segment describes itself. */
struct cs_field {
	char		name[24];
	uint32_t	offset;			/* within the counters block */
	uint16_t	type;			/* CS_TYPE_* */
	uint16_t	unit;			/* CS_UNIT_* */
};

enum { CS_TYPE_U64 = 1, CS_TYPE_U32 = 2 };
enum {
	CS_UNIT_NONE = 0, CS_UNIT_PACKETS = 1, CS_UNIT_BYTES = 2,
	CS_UNIT_NS_REALTIME = 3, CS_UNIT_NS_MONOTONIC = 4
};

/* One per slot at counters_offset + slot * counters_stride: the hot block. */
struct cs_counters {
	cs_u64		seq;			/*   0 seqlock: odd while written */
	cs_u64		session_id;		/*   8 generation; 0 in a free slot */
	cs_u64		packets;		/*  16 */
	cs_u64		bytes;			/*  24 */
	cs_u64		drops;			/*  32 */
	cs_u64		if_drops;		/*  40 */
	cs_u64		last_packet_ns;		/*  48 CLOCK_REALTIME */
	cs_u64		update_ns;		/*  56 CLOCK_MONOTONIC */
	cs_u32		state;			/*  64 enum capstats_state */
	cs_u32		mode;			/*  68 enum capstats_mode */
	uint8_t		reserved[56];		/*  72 */
};

#define CS_NAME_WORDS	((CAPSTATS_NAME_MAX + 1) / 8)
#define CS_IFACE_WORDS	((CAPSTATS_IFACE_MAX + 1) / 8)
#define CS_ERROR_WORDS	((CAPSTATS_SHM_ERROR_MAX + 1) / 8)
#define CS_FILTER_WORDS	((CAPSTATS_SHM_FILTER_MAX + 1) / 8)

/* One per slot at meta_offset + slot * meta_stride: the cold block. */
struct cs_meta {
	cs_u64		seq;			/*   0 seqlock: odd while written */
	cs_u64		session_id;		/*   8 */
	cs_u32		state;			/*  16 */
	cs_u32		mode;			/*  20 */
	cs_u32		flags;			/*  24 CAPSTATS_F_* */
	uint32_t	reserved0;		/*  28 */
	cs_u64		created_ns;		/*  32 */
	cs_u64		modified_ns;		/*  40 */
	cs_u64		config_gen;		/*  48 */
	uint8_t		reserved1[8];		/*  56 */
	cs_u64		name[CS_NAME_WORDS];	/*  64 NUL-padded text */
	cs_u64		iface[CS_IFACE_WORDS];	/* 128 */
	cs_u64		error[CS_ERROR_WORDS];	/* 144 */
	uint8_t		reserved2[16];		/* 240 */
	cs_u64		filter[CS_FILTER_WORDS]; /* 256 */
};

static_assert(sizeof(struct cs_header) == 256, "header block");
static_assert(offsetof(struct cs_header, state) == 128, "header state");
static_assert(offsetof(struct cs_header, dir_seq) == 192, "header dir_seq");
static_assert(sizeof(struct cs_field) == CS_FIELD_STRIDE, "field stride");
static_assert(sizeof(struct cs_counters) == CS_COUNTERS_STRIDE, "counters stride");
static_assert(offsetof(struct cs_counters, state) == 64, "counters state");
static_assert(sizeof(struct cs_meta) == CS_META_STRIDE, "meta stride");
static_assert(offsetof(struct cs_meta, name) == 64, "meta name");
static_assert(offsetof(struct cs_meta, iface) == 128, "meta iface");
static_assert(offsetof(struct cs_meta, error) == 144, "meta error");
static_assert(offsetof(struct cs_meta, filter) == 256, "meta filter");

#endif
