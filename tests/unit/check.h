/*
 * check.h: what every unit test shares. A CHECK that fails is counted and
 * named on stderr, and the test goes on; check_done() prints the totals
 * and gives the exit status. A test that cannot run here says why and
 * exits with CHECK_SKIP, which tests/run.sh reports as a skip.
 */
#ifndef CAPSTATS_CHECK_H
#define CAPSTATS_CHECK_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SEC		1000000000ull
#define CHECK_SKIP	77

static int checks, failures;

#define CHECK(e) do {							\
	checks++;							\
	if (!(e)) {							\
		failures++;						\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n",		\
		    __FILE__, __LINE__, #e);				\
	}								\
} while (0)

/* CHECK, evaluating E once, and on failure saying what was being done. */
#define CHECK_MSG(e, ...) do {						\
	bool ok_ = (e);							\
	checks++;							\
	if (!ok_) {							\
		failures++;						\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n  ",		\
		    __FILE__, __LINE__, #e);				\
		fprintf(stderr, __VA_ARGS__);				\
	}								\
} while (0)

/* Two strings that must be equal; both are shown when they are not. */
#define CHECK_STR(got, want) do {					\
	const char *got_ = (got), *want_ = (want);			\
	checks++;							\
	if (got_ == NULL || strcmp(got_, want_) != 0) {			\
		failures++;						\
		fprintf(stderr, "%s:%d: CHECK failed: %s\n"		\
		    "  got:  \"%s\"\n  want: \"%s\"\n", __FILE__,	\
		    __LINE__, #got, got_ ? got_ : "(null)", want_);	\
	}								\
} while (0)

/* The totals, as "NAME: N checks, M failed"; the exit status. */
static inline int
check_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, checks, failures);
	return failures == 0 ? 0 : 1;
}

/* Sleep NS nanoseconds of the real clock. */
static inline void
check_nap(unsigned long long ns)
{
	struct timespec ts = { (time_t)(ns / SEC), (long)(ns % SEC) };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

#endif
