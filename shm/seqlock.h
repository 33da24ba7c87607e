/*
 * seqlock.h: the seqlock protocol of the segment, and the only code that
 * names a memory order. Every access to a word that may change after the
 * segment is published goes through these helpers as a C11 atomic, so no
 * access is a data race; such words are never copied with memcpy.
 */
#ifndef CAPSTATS_SEQLOCK_H
#define CAPSTATS_SEQLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "layout.h"

/*
 * Writer: make SEQ odd, then order the payload stores after it. Returns the
 * odd value for seq_write_end(). There is one writer per block.
 */
static inline uint64_t
seq_write_begin(cs_u64 *seq)
{
	uint64_t odd;

	odd = atomic_load_explicit(seq, memory_order_relaxed) | 1;
	atomic_store_explicit(seq, odd, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return odd;
}

/* Writer: publish the payload stored since seq_write_begin(). */
static inline void
seq_write_end(cs_u64 *seq, uint64_t odd)
{
	atomic_store_explicit(seq, odd + 1, memory_order_release);
}

static inline void
seq_st64(cs_u64 *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline void
seq_st32(cs_u32 *p, uint32_t v)
{
	atomic_store_explicit(p, v, memory_order_relaxed);
}

/*
 * A single word that readers check without a seqlock (segment state,
 * heartbeat, directory size): everything stored before it is visible to a
 * reader that sees the new value through seq_acquire32/64().
 */
static inline void
seq_publish32(cs_u32 *p, uint32_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

static inline void
seq_publish64(cs_u64 *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

/* Replace FROM by TO in a word another process may also write. */
static inline bool
seq_swap32(cs_u32 *p, uint32_t from, uint32_t to)
{
	return atomic_compare_exchange_strong_explicit(p, &from, to,
	    memory_order_release, memory_order_relaxed);
}

static inline uint32_t
seq_acquire32(const cs_u32 *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

static inline uint64_t
seq_acquire64(const cs_u64 *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

/* Reader: the value to hand to seq_read_retry(); odd means "being written". */
static inline uint64_t
seq_read_begin(const cs_u64 *seq)
{
	return atomic_load_explicit(seq, memory_order_acquire);
}

/*
 * Reader: true when the payload loaded since seq_read_begin() returned S1
 * may be torn and must be read again. CAPSTATS_TEST_BROKEN_READER removes
 * the re-check: a mutation only the stress test builds, to show it can
 * see torn reads.
 */
static inline bool
seq_read_retry(const cs_u64 *seq, uint64_t s1)
{
	atomic_thread_fence(memory_order_acquire);
#ifdef CAPSTATS_TEST_BROKEN_READER
	(void)seq;
	(void)s1;
	return false;
#else
	return atomic_load_explicit(seq, memory_order_relaxed) != s1;
#endif
}

static inline uint64_t
seq_ld64(const cs_u64 *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

static inline uint32_t
seq_ld32(const cs_u32 *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

/*
 * Store S (NULL reads as "") into the NWORDS words at W, NUL-padded and cut
 * to leave at least one NUL. Returns true if S was cut.
 */
static inline bool
seq_put_text(cs_u64 *w, size_t nwords, const char *s)
{
	size_t i, len, off, n;
	uint64_t v;
	char b[8];

	len = s == NULL ? 0 : strnlen(s, nwords * 8);
	n = len < nwords * 8 ? len : nwords * 8 - 1;
	for (i = 0; i < nwords; i++) {
		off = i * 8;
		memset(b, 0, sizeof(b));
		if (off < n)
			memcpy(b, s + off, n - off < 8 ? n - off : 8);
		memcpy(&v, b, sizeof(v));
		seq_st64(&w[i], v);
	}
	return n < len;
}

/*
 * Load the NWORDS words at W into DST, which holds NWORDS * 8 bytes. The
 * bytes are copied as they are: the caller checks for the NUL.
 */
static inline void
seq_get_text(const cs_u64 *w, size_t nwords, char *dst)
{
	size_t i;
	uint64_t v;

	for (i = 0; i < nwords; i++) {
		v = seq_ld64(&w[i]);
		memcpy(dst + i * 8, &v, sizeof(v));
	}
}

#endif
