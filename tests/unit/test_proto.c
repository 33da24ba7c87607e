/*
 * test_proto.c: the control protocol's shared checks (daemon/proto.c):
 * the status words and their numbers, which never change, and the rules
 * for names, interfaces, filter text and printable bytes, at and around
 * every limit. Needs nothing but itself.
 */
#include "../../daemon/proto.c"

#include "check.h"

/* The statuses in the order proto.h gives them: a renumbering fails here. */
static const struct {
	enum ctl_status	 st;
	int		 number;
	const char	*word;
} wire[] = {
	{ CTL_OK, 0, "ok" },
	{ CTL_BADREQ, 1, "badreq" },
	{ CTL_NOSESSION, 2, "nosession" },
	{ CTL_EXISTS, 3, "exists" },
	{ CTL_BADNAME, 4, "badname" },
	{ CTL_BADFILTER, 5, "badfilter" },
	{ CTL_BADIFACE, 6, "badiface" },
	{ CTL_FULL, 7, "full" },
	{ CTL_PERM, 8, "perm" },
	{ CTL_NOMEM, 9, "nomem" },
	{ CTL_TOOLONG, 10, "toolong" },
	{ CTL_INTERNAL, 11, "internal" },
	{ CTL_UNSUPPORTED, 12, "unsupported" },
	{ CTL_BUSY, 13, "busy" },
};

static void
test_statuses(void)
{
	size_t i, n = sizeof(wire) / sizeof(wire[0]);
	int a, b;

	CHECK(CTL_NSTATUS == (int)n);
	for (i = 0; i < n; i++) {
		CHECK_MSG((int)wire[i].st == wire[i].number, "%s\n",
		    wire[i].word);
		CHECK_STR(ctl_status_word(wire[i].st), wire[i].word);
		CHECK(ctl_status_parse(wire[i].word) == wire[i].st);
	}
	for (a = 0; a < CTL_NSTATUS; a++) {
		/* A word travels between TABs: lower-case letters only. */
		CHECK(strspn(ctl_status_word(a), "abcdefghijklmnopqrstuvwxyz") ==
		    strlen(ctl_status_word(a)) && ctl_status_word(a)[0] != '\0');
		for (b = 0; b < a; b++)
			CHECK(strcmp(ctl_status_word(a), ctl_status_word(b)) != 0);
	}
	/* Out of range: what the daemon would say for a status it lost. */
	CHECK_STR(ctl_status_word(CTL_NSTATUS), "internal");
	CHECK_STR(ctl_status_word(CTL_NSTATUS + 7), "internal");
	CHECK_STR(ctl_status_word((enum ctl_status)-1), "internal");
	/* Parsing is exact. */
	CHECK(ctl_status_parse("") == CTL_NSTATUS);
	CHECK(ctl_status_parse("OK") == CTL_NSTATUS);
	CHECK(ctl_status_parse("ok ") == CTL_NSTATUS);
	CHECK(ctl_status_parse(" ok") == CTL_NSTATUS);
	CHECK(ctl_status_parse("busyy") == CTL_NSTATUS);
	CHECK(ctl_status_parse("bus") == CTL_NSTATUS);
	CHECK(ctl_status_parse("internal error") == CTL_NSTATUS);
	/* The rule as messages say it. */
	CHECK_STR(CTL_NAME_RULE, "1 to 63 characters of A-Za-z0-9._-");
}

static void
test_printable(void)
{
	char b[3] = "a?b";
	int c;

	CHECK(ctl_printable("", 0));
	CHECK(ctl_printable(NULL, 0));
	for (c = 0; c < 256; c++) {
		b[1] = (char)c;
		CHECK_MSG(ctl_printable(b, 3) == (c >= 0x20 && c <= 0x7e),
		    "byte %#x\n", c);
		CHECK(ctl_printable(b, 1));	/* only LEN bytes are read */
	}
	/* A NUL inside the length is a byte like the others. */
	CHECK(!ctl_printable("ab\0cd", 5));
	CHECK(ctl_printable("ab\0cd", 2));
}

/* S of N copies of C. */
static char *
fill(char *s, int c, size_t n)
{
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void
test_names(void)
{
	char s[CTL_FILTER_MAX + 8], one[2] = "x";
	int c;

	CHECK(!ctl_valid_name(""));
	CHECK(ctl_valid_name(fill(s, 'a', 1)));
	CHECK(ctl_valid_name(fill(s, 'a', CAPSTATS_NAME_MAX)));
	CHECK(!ctl_valid_name(fill(s, 'a', CAPSTATS_NAME_MAX + 1)));
	CHECK(ctl_valid_name("Web-1.backup_2"));
	/* Dots alone are names: they never become paths. */
	CHECK(ctl_valid_name(".") && ctl_valid_name(".."));
	for (c = 1; c < 256; c++) {
		one[0] = (char)c;
		CHECK_MSG(ctl_valid_name(one) == (strchr("._-", c) != NULL ||
		    (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9')), "byte %#x\n", c);
	}
	CHECK(!ctl_valid_name("a b") && !ctl_valid_name("a/b") &&
	    !ctl_valid_name("a\tb") && !ctl_valid_name("caf\xc3\xa9"));
}

static void
test_ifaces(void)
{
	char s[CAPSTATS_IFACE_MAX + 8], one[2] = "x";
	int c;

	CHECK(!ctl_valid_iface(""));
	CHECK(ctl_valid_iface(fill(s, 'e', 1)));
	CHECK(ctl_valid_iface(fill(s, 'e', CAPSTATS_IFACE_MAX)));
	CHECK(!ctl_valid_iface(fill(s, 'e', CAPSTATS_IFACE_MAX + 1)));
	CHECK(ctl_valid_iface("eth0") && ctl_valid_iface("any") &&
	    ctl_valid_iface("eth0.100") && ctl_valid_iface("br-lan:1") &&
	    ctl_valid_iface("..."));
	/* Linux refuses these as interface names; the daemon never asks. */
	CHECK(!ctl_valid_iface(".") && !ctl_valid_iface(".."));
	for (c = 1; c < 256; c++) {
		one[0] = (char)c;
		CHECK_MSG(ctl_valid_iface(one) == (c > 0x20 && c <= 0x7e &&
		    c != '/' && c != '.'), "byte %#x\n", c);
	}
	CHECK(!ctl_valid_iface("eth 0") && !ctl_valid_iface("a/b") &&
	    !ctl_valid_iface("eth0\n"));
}

static void
test_filters(void)
{
	char s[CTL_FILTER_MAX + 8], one[2] = "x";
	int c;

	/* The empty filter counts every packet. */
	CHECK(ctl_valid_filter(""));
	CHECK(ctl_valid_filter(fill(s, ' ', CTL_FILTER_MAX)));
	CHECK(!ctl_valid_filter(fill(s, 'x', CTL_FILTER_MAX + 1)));
	CHECK(ctl_valid_filter("tcp port 80 and (host 10.0.0.1 or net "
	    "192.168.0.0/16) and ip[0] & 0xf != 5"));
	for (c = 1; c < 256; c++) {
		one[0] = (char)c;
		CHECK_MSG(ctl_valid_filter(one) == (c >= 0x20 && c <= 0x7e),
		    "byte %#x\n", c);
	}
	CHECK(!ctl_valid_filter("tcp\tport 80") &&
	    !ctl_valid_filter("tcp port 80\r"));
}

/* The limits as proto.h states them, and as the segment's fields hold them. */
static void
test_limits(void)
{
	CHECK(CTL_REQUEST_MAX == 4096 && CTL_FILTER_MAX == 2048);
	CHECK(CTL_FILTER_MAX < CTL_REQUEST_MAX);
	CHECK(CTL_ROW_MAX > CTL_FILTER_MAX);
	CHECK(CTL_CLIENTS_ROOT < CTL_CLIENTS_MAX &&
	    CTL_CLIENTS_UID <= CTL_CLIENTS_MAX - CTL_CLIENTS_ROOT);
	CHECK(CTL_SESSIONS_DEFAULT <= CTL_SESSIONS_MAX);
	CHECK(CTL_BUFFER_MIN_KB <= CTL_BUFFER_DEFAULT_KB &&
	    CTL_BUFFER_DEFAULT_KB <= CTL_BUFFER_MAX_KB);
}

int
main(void)
{
	test_statuses();
	test_printable();
	test_names();
	test_ifaces();
	test_filters();
	test_limits();
	return check_done("test_proto");
}
