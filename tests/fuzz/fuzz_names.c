/*
 * fuzz_names.c: libFuzzer target for the checks proto.c makes on session
 * names, interface names and filter text, each held against a reference
 * written here from the rules proto.h states; and for libpcap's compiler
 * on every filter those checks let through to it, as pcap.c calls it.
 */
#include <pcap/pcap.h>
#include <string.h>

#include "fuzz.h"

#include "../../daemon/proto.c"

#define FZ_SNAPLEN	128	/* pcap.c's snapshot length */

/*
 * The references go one character at a time, the plainest reading of the
 * rules. They are left instrumented on purpose: proto.c's checks run in
 * strspn() and strpbrk(), which libc runs without coverage, so the
 * references' branches are what shows the fuzzer the character classes.
 */
static bool
ref_printable(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] < ' ' || p[i] > '~')
			return false;
	return true;
}

/* 1 to CAPSTATS_NAME_MAX of A-Z a-z 0-9 . _ - */
static bool
ref_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > CAPSTATS_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

/*
 * 1 to CAPSTATS_IFACE_MAX printable characters, no '/' and no space; and
 * not "." or "..", which no Linux interface may be called.
 */
static bool
ref_iface(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > CAPSTATS_IFACE_MAX)
		return false;
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~' || s[i] == '/')
			return false;
	return true;
}

/* At most CTL_FILTER_MAX printable characters; empty counts everything. */
static bool
ref_filter(const char *s)
{
	size_t n = strlen(s);

	return n <= CTL_FILTER_MAX && ref_printable((const uint8_t *)s, n);
}

/*
 * What pcap.c's compile() does with a filter, on a handle with no device:
 * it may fail, never crash, and frees what it made.
 */
static void
fz_compile(const char *filter)
{
	struct bpf_program prog;
	const char *why;
	pcap_t *p;

	FZ_ASSERT((p = pcap_open_dead(DLT_EN10MB, FZ_SNAPLEN)) != NULL);
	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == 0) {
		FZ_ASSERT(prog.bf_len > 0 && prog.bf_insns != NULL);
		pcap_freecode(&prog);
	} else {
		/* The daemon copies this message into its reply. */
		why = pcap_geterr(p);
		FZ_ASSERT(why != NULL && memchr(why, '\0', PCAP_ERRBUF_SIZE) != NULL);
	}
	pcap_close(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	FZ_ASSERT(ctl_printable((const char *)data, size) ==
	    ref_printable(data, size));
	/* A request's words are C strings: the text ends at the first NUL. */
	FZ_ASSERT((text = malloc(size + 1)) != NULL);
	if (size > 0)
		memcpy(text, data, size);
	text[size] = '\0';
	FZ_ASSERT(ctl_valid_name(text) == ref_name(text));
	FZ_ASSERT(ctl_valid_iface(text) == ref_iface(text));
	FZ_ASSERT(ctl_valid_filter(text) == ref_filter(text));
	if (ctl_valid_filter(text))
		fz_compile(text);
	free(text);
	return 0;
}
