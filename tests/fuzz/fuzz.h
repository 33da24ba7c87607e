/*
 * fuzz.h: what every libFuzzer target here shares. A broken invariant is
 * an abort(), which libFuzzer reports as a crash and saves the input for;
 * a plain return would let the fuzzer move on past the bug.
 */
#ifndef CAPSTATS_FUZZ_H
#define CAPSTATS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FZ_ASSERT(e) do {						\
	if (!(e)) {							\
		fprintf(stderr, "%s:%d: invariant broken: %s\n",	\
		    __FILE__, __LINE__, #e);				\
		abort();						\
	}								\
} while (0)

/*
 * For the harness's own checks: their branches say nothing about the code
 * under test, and feeding them to the fuzzer as coverage would only grow
 * the corpus with inputs that differ in how a reply was checked.
 */
#define FZ_NOCOV	__attribute__((no_sanitize("coverage")))

/* libFuzzer's entry points; declared here for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#endif
