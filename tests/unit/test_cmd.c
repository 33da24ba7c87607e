/*
 * test_cmd.c: the command handlers (daemon/cmd.c) over the real sessions,
 * state file, replies and segment (tests/unit/doubles.c): each request's
 * reply, word for word, what the state file then holds and what a reader
 * of the segment sees. Runs in a second; as root, or, when not root, in a
 * user namespace of its own. Its segment and state file are named for the
 * process and removed at the end.
 */
#include "doubles.c"

#include <limits.h>

#include "check.h"

#define MAX_SESSIONS	4
#define TEST_SLOTS	1024	/* sess_init()'s least */

static char dir[PATH_MAX], statepath[PATH_MAX + 16], shmname[64];
static char inst[17];		/* the instance, as replies write it */

static void
on_answer(struct reply *r)
{
	(void)r;
}

/* Hand LINE to cmd_exec() in a reply of its own, as ctl.c does. */
static struct reply *
begin(const char *line)
{
	char buf[CTL_REQUEST_MAX + CTL_FILTER_MAX];
	struct reply *r;

	if ((r = malloc(sizeof(*r))) == NULL)
		abort();
	strlcpy(buf, line, sizeof(buf));
	reply_open(r, on_answer);
	cmd_exec(buf, r);
	return r;
}

/* R's whole text once it is answered, turning the loop for it. */
static const char *
finish(struct reply *r)
{
	static char text[CTL_REPLY_MAX / 64];
	int turns;

	for (turns = 0; r->later && turns < 8; turns++)
		dbl_turn();
	if (r->later)
		snprintf(text, sizeof(text), "(no answer after %d turns)", turns);
	else if (r->failed)
		snprintf(text, sizeof(text), "(the reply failed)");
	else
		snprintf(text, sizeof(text), "%.*s", (int)r->len,
		    r->buf != NULL ? r->buf : "");
	reply_close(r);
	free(r);
	return text;
}

static const char *
req(const char *line)
{
	return finish(begin(line));
}

/* The value of KEY in the first row of REPLY, or "(none)". */
static const char *
field(const char *reply, const char *key)
{
	static char val[CTL_FILTER_MAX + 1];
	char pat[64];
	const char *p, *end;

	snprintf(pat, sizeof(pat), "\t%s=", key);
	end = strchr(reply, '\n');
	if ((p = strstr(reply, pat)) == NULL || (end != NULL && p > end))
		return "(none)";
	p += strlen(pat);
	snprintf(val, sizeof(val), "%.*s", (int)strcspn(p, "\t\n"), p);
	return val;
}

static const char *
file_text(const char *file)
{
	static char text[64 << 10];
	size_t n = 0;
	FILE *f;

	if ((f = fopen(file, "r")) == NULL)
		return "(no file)";
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* What a reader of the segment sees of NAME: its description, or -1. */
static int
seen(const char *name, struct capstats_info *info, struct capstats_ref *ref)
{
	char errbuf[CAPSTATS_ERRBUF_SIZE];
	struct capstats *h;
	struct capstats_ref r;
	int rc;

	if ((h = capstats_open(shmname, &rc, errbuf)) == NULL) {
		fprintf(stderr, "capstats_open: %s\n", errbuf);
		return -1;
	}
	if ((rc = capstats_find(h, name, &r)) == CAPSTATS_OK &&
	    (rc = capstats_info(h, &r, info)) == CAPSTATS_OK && ref != NULL)
		*ref = r;
	capstats_close(h);
	return rc == CAPSTATS_OK ? 0 : -1;
}

/* The state a reader reads for REF. */
static uint32_t
seen_state(const struct capstats_ref *ref)
{
	char errbuf[CAPSTATS_ERRBUF_SIZE];
	struct capstats_snapshot snap;
	struct capstats *h;
	int rc;

	if ((h = capstats_open(shmname, &rc, errbuf)) == NULL)
		return UINT32_MAX;
	rc = capstats_read(h, ref, &snap);
	capstats_close(h);
	return rc == CAPSTATS_OK ? snap.state : UINT32_MAX;
}

/* A daemon of its own for each test, from an empty state file. */
static void
up(void)
{
	char err[512];

	unlink(statepath);
	dbl_log_clear();
	if (dbl_start(shmname, MAX_SESSIONS, statepath, err, sizeof(err)) == -1) {
		fprintf(stderr, "test_cmd: %s\n", err);
		exit(1);
	}
	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)cfg.instance);
	state_restore();
}

/* Stop every session by request, then the daemon. */
static void
down(void)
{
	struct sess *s;
	char line[128];

	dbl_settle();
	while ((s = TAILQ_FIRST(&sessions)) != NULL) {
		snprintf(line, sizeof(line), "stop %s", s->name);
		CHECK_STR(req(line), "ok\n");
	}
	CHECK(dbl_paths_open == 0);
	CHECK(strcmp(file_text(statepath), "(no file)") == 0 ||
	    strcmp(file_text(statepath), "# capstats state 1\n") == 0);
	dbl_stop();
	dbl_kernel_missing[0] = '\0';
	dbl_compile_nomem = false;
}

static void
test_requests(void)
{
	char line[256];

	CHECK_STR(req(""), "error\tbadreq\tempty request\n");
	CHECK_STR(req(" list"), "error\tbadreq\tempty request\n");
	CHECK_STR(req("frob"), "error\tbadreq\tunknown command 'frob'\n");
	CHECK_STR(req("LIST"), "error\tbadreq\tunknown command 'LIST'\n");
	/* The client answers these from the segment alone. */
	CHECK_STR(req("poll a"), "error\tbadreq\tunknown command 'poll'\n");
	CHECK_STR(req("metrics"), "error\tbadreq\tunknown command 'metrics'\n");
	memset(line, 'x', 100);
	line[100] = '\0';
	CHECK(strstr(req(line), "unknown command 'xxxxxxxx") != NULL);
	CHECK(strlen(req(line)) == strlen("error\tbadreq\tunknown command ''\n")
	    + 64);
	/* Argument counts, from the command table. */
	CHECK_STR(req("list x"), "error\tbadreq\tusage: list\n");
	CHECK_STR(req("list "), "error\tbadreq\tusage: list\n");
	CHECK_STR(req("show"), "error\tbadreq\tusage: show NAME\n");
	CHECK_STR(req("show a b"), "error\tbadreq\tusage: show NAME\n");
	CHECK_STR(req("stop"), "error\tbadreq\tusage: stop NAME\n");
	CHECK_STR(req("stop a b"), "error\tbadreq\tusage: stop NAME\n");
	CHECK_STR(req("modify"), "error\tbadreq\tusage: modify NAME EXPR...\n");
	CHECK_STR(req("new a"), "error\tbadreq\tusage: new NAME [interface "
	    "IFACE] [mode auto|pcap|kernel] filter EXPR...\n");
	/* Names. */
	CHECK_STR(req("show a/b"), "error\tbadname\tinvalid session name "
	    "'a/b': use 1 to 63 characters of A-Za-z0-9._-\n");
	CHECK_STR(req("show "), "error\tbadname\tinvalid session name '': "
	    "use 1 to 63 characters of A-Za-z0-9._-\n");
	CHECK_STR(req("show nope"), "error\tnosession\tno session named nope\n");
	CHECK_STR(req("stop nope"), "error\tnosession\tno session named nope\n");
	CHECK_STR(req("modify nope ip"),
	    "error\tnosession\tno session named nope\n");
	CHECK_STR(req("list"), "ok\n");
}

static void
test_new_words(void)
{
	static const char usage[] = "error\tbadreq\tusage: new NAME [interface "
	    "IFACE] [mode auto|pcap|kernel] filter EXPR...\n";
	char line[CTL_REQUEST_MAX], want[256];

	CHECK_STR(req("new a bogus filter ip"), usage);
	CHECK_STR(req("new a interface"), usage);
	CHECK_STR(req("new a interface e0 interface e1 filter ip"), usage);
	CHECK_STR(req("new a mode fast filter ip"), usage);
	CHECK_STR(req("new a mode pcap mode pcap filter ip"), usage);
	CHECK_STR(req("new a interface e0"), "error\tbadreq\tnew: missing "
	    "'filter' (an empty filter counts every packet)\n");
	/* The checks come in a fixed order: name, taken, filter, interface. */
	CHECK_STR(req("new a/b interface a/b filter ip"), "error\tbadname\t"
	    "invalid session name 'a/b': use 1 to 63 characters of "
	    "A-Za-z0-9._-\n");
	snprintf(line, sizeof(line), "new a interface a/b filter %0*d",
	    CTL_FILTER_MAX + 1, 0);
	snprintf(want, sizeof(want), "error\ttoolong\tfilter longer than %d "
	    "bytes\n", CTL_FILTER_MAX);
	CHECK_STR(req(line), want);
	CHECK_STR(req("new a interface a/b filter ip"),
	    "error\tbadiface\tinvalid interface name 'a/b'\n");
	CHECK_STR(req("new a interface 0123456789abcdef filter ip"),
	    "error\tbadiface\tinvalid interface name '0123456789abcdef'\n");
	snprintf(want, sizeof(want), "row\tsession=a\tinterface=dbl0\t"
	    "mode=kernel\tmode_reason=the default\tslot=0\tsession_id=1\t"
	    "instance=%s\nok\n", inst);
	CHECK_STR(req("new a filter ip"), want);
	CHECK_STR(req("new a interface a/b filter ip"),
	    "error\texists\tsession a exists\n");
	CHECK_STR(req("list"), "row\tsession=a\tinterface=dbl0\tstate=running\t"
	    "mode=kernel\tmode_reason=the default\tpackets=0\tbytes=0\t"
	    "drops=0\tif_drops=0\tfilter=ip\nok\n");
}

static void
test_new(void)
{
	char want[512], line[CTL_REQUEST_MAX];
	struct capstats_info info;
	struct capstats_ref ref;
	const char *r;

	snprintf(want, sizeof(want), "row\tsession=web\tinterface=eth1\t"
	    "mode=kernel\tmode_reason=the default\tslot=0\tsession_id=1\t"
	    "instance=%s\nok\n", inst);
	CHECK_STR(req("new web interface eth1 filter tcp port 80"), want);
	CHECK_STR(file_text(statepath), "# capstats state 1\n"
	    "session\tweb\teth1\tauto\ttcp port 80\n");
	CHECK(dbl_logged("session web: counting on eth1 (kernel), filter "
	    "'tcp port 80'"));
	CHECK(seen("web", &info, &ref) == 0);
	CHECK_STR(info.filter, "tcp port 80");
	CHECK_STR(info.iface, "eth1");
	CHECK(info.state == CAPSTATS_RUNNING && info.mode ==
	    CAPSTATS_MODE_KERNEL && info.flags == 0 && info.slot == 0 &&
	    info.session_id == 1 && info.created_ns == DBL_REAL_START);

	snprintf(want, sizeof(want), "row\tsession=web\tinterface=eth1\t"
	    "state=running\tmode=kernel\tmode_reason=the default\tpackets=0\t"
	    "bytes=0\tdrops=0\tif_drops=0\tcreated=%llu\tmodified=%llu\t"
	    "last_packet=0\tslot=0\tsession_id=1\tinstance=%s\t"
	    "filter=tcp port 80\nok\n", DBL_REAL_START, DBL_REAL_START, inst);
	CHECK_STR(req("show web"), want);

	/* Counters as the path keeps them, drops over every open. */
	sess_find("web")->t.packets = UINT64_MAX;
	sess_find("web")->t.bytes = 1234567890123ull;
	sess_find("web")->t.drops = 5;
	sess_find("web")->t.drops_base = 7;
	sess_find("web")->t.if_drops_base = 1;
	r = req("show web");
	CHECK_STR(field(r, "packets"), "18446744073709551615");
	CHECK_STR(field(r, "bytes"), "1234567890123");
	CHECK_STR(field(r, "drops"), "12");
	CHECK_STR(field(r, "if_drops"), "1");

	/* Asked-for paths, the empty filter, spaces kept. */
	r = req("new p mode pcap filter");
	CHECK_STR(field(r, "mode"), "pcap");
	CHECK_STR(field(r, "mode_reason"), "asked for");
	CHECK_STR(field(r, "slot"), "1");
	CHECK_STR(field(r, "session_id"), "2");
	r = req("new k mode kernel interface any filter ip  and  udp");
	CHECK_STR(field(r, "mode"), "kernel");
	CHECK_STR(field(r, "mode_reason"), "asked for");
	CHECK_STR(field(req("show k"), "filter"), "ip  and  udp");
	CHECK_STR(field(req("show p"), "filter"), "");
	CHECK(seen("k", &info, NULL) == 0 && info.flags == CAPSTATS_F_MODE_ASKED);
	CHECK_STR(file_text(statepath), "# capstats state 1\n"
	    "session\tweb\teth1\tauto\ttcp port 80\n"
	    "session\tp\tdbl0\tpcap\t\n"
	    "session\tk\tany\tkernel\tip  and  udp\n");

	CHECK_STR(req("stop p"), "ok\n");
	CHECK_STR(req("stop k"), "ok\n");

	/* A filter the kernel path refuses: libpcap counts it, unless... */
	r = req("new alu filter ip[0] & 0xf != 5");
	CHECK_STR(field(r, "mode"), "pcap");
	CHECK(strncmp(field(r, "mode_reason"), "kernel path refused: "
	    "instruction ", 33) == 0);
	CHECK(seen("alu", &info, NULL) == 0 && info.mode == CAPSTATS_MODE_PCAP &&
	    info.flags == CAPSTATS_F_MODE_FALLBACK);
	CHECK(dbl_logged("session alu: counting with libpcap: kernel path "
	    "refused: instruction"));
	/* ...the kernel's was asked for. */
	r = req("new alu2 mode kernel filter ip[0] & 0xf != 5");
	CHECK(strncmp(r, "error\tbadfilter\tinstruction ", 28) == 0);
	CHECK(sess_find("alu2") == NULL && seen("alu2", &info, NULL) == -1);

	/* What libpcap refuses, and interfaces that are not there. */
	r = req("new bad filter tcp port");
	CHECK_MSG(strncmp(r, "error\tbadfilter\tfilter 'tcp port': ", 35) == 0,
	    "%s", r);
	CHECK(sess_find("bad") == NULL);
	CHECK_STR(req("new bad interface nosuch0 filter ip"),
	    "error\tbadiface\tnosuch0: no such interface\n");
	/* A message with control bytes reaches the wire as one line. */
	CHECK_STR(req("new bad mode pcap interface flaky0 filter ip"),
	    "error\tbadiface\tflaky0: capture socket: Network is down    "
	    "[0m\n");
	CHECK(sess_find("bad") == NULL && seen("bad", &info, NULL) == -1);

	/* The session limit. */
	CHECK_STR(field(req("new x3 filter"), "session"), "x3");
	CHECK_STR(field(req("new x4 filter"), "session"), "x4");
	CHECK_STR(req("new bad filter"), "error\tfull\tsession limit reached: "
	    "4 sessions (raise it with -n)\n");
	CHECK(sess_find("bad") == NULL);
	CHECK_STR(file_text(statepath), "# capstats state 1\n"
	    "session\tweb\teth1\tauto\ttcp port 80\n"
	    "session\talu\tdbl0\tauto\tip[0] & 0xf != 5\n"
	    "session\tx3\tdbl0\tauto\t\n"
	    "session\tx4\tdbl0\tauto\t\n");

	/* The longest filter there may be. */
	CHECK_STR(req("stop alu"), "ok\n");
	snprintf(line, sizeof(line), "new long filter %*s", CTL_FILTER_MAX,
	    "ip");
	CHECK_STR(field(req(line), "session"), "long");
	CHECK(strlen(sess_find("long")->filter) == CTL_FILTER_MAX);
}

static void
test_kernel_missing(void)
{
	const char *r;

	strlcpy(dbl_kernel_missing, "no bpf(2) here", sizeof(dbl_kernel_missing));
	r = req("new a filter ip");
	CHECK_STR(field(r, "mode"), "pcap");
	CHECK_STR(field(r, "mode_reason"), "kernel path refused: no bpf(2) here");
	CHECK_STR(req("new b mode kernel filter ip"), "error\tunsupported\t"
	    "kernel path unavailable: no bpf(2) here\n");
	CHECK_STR(field(req("new c mode pcap filter ip"), "mode_reason"),
	    "asked for");
}

/* Replies answered later: who waits, who hears what, and who is gone. */
static void
test_later(void)
{
	struct reply *r1, *r2;

	r1 = begin("new a filter ip");
	CHECK(r1->later && r1->len == 0);
	/* Starting is not started: listed nowhere, but the name is taken. */
	CHECK_STR(req("list"), "ok\n");
	CHECK_STR(req("show a"), "error\tnosession\tno session named a\n");
	CHECK_STR(req("stop a"), "error\tnosession\tno session named a\n");
	CHECK_STR(req("new a filter udp"), "error\texists\tsession a exists\n");
	CHECK_STR(field(finish(r1), "session"), "a");

	/* One modify at a time; a stop answers the modify under way. */
	r1 = begin("modify a tcp");
	CHECK(r1->later);
	CHECK_STR(req("modify a udp"),
	    "error\tbusy\tsession a: a modify is under way\n");
	CHECK_STR(finish(r1), "ok\n");
	CHECK_STR(field(req("show a"), "filter"), "tcp");
	r1 = begin("modify a udp");
	CHECK_STR(req("stop a"), "ok\n");
	CHECK(!r1->later);
	CHECK_STR(finish(r1), "error\tnosession\tsession a was stopped\n");
	CHECK_STR(file_text(statepath), "# capstats state 1\n");

	/* The limit counts sessions still starting. */
	CHECK_STR(field(req("new s1 filter"), "session"), "s1");
	CHECK_STR(field(req("new s2 filter"), "session"), "s2");
	CHECK_STR(field(req("new s3 filter"), "session"), "s3");
	r1 = begin("new s4 filter");
	CHECK_STR(req("new s5 filter"), "error\tfull\tsession limit reached: "
	    "4 sessions (raise it with -n)\n");
	CHECK_STR(field(finish(r1), "session"), "s4");

	/* A client gone before its answer: the session is kept, and saved. */
	CHECK_STR(req("stop s4"), "ok\n");
	r1 = begin("new gone filter ip");
	r2 = begin("modify s1 tcp");
	reply_close(r1);
	reply_close(r2);
	dbl_settle();
	free(r1);
	free(r2);
	CHECK(sess_find("gone") != NULL);
	CHECK_STR(field(req("show s1"), "filter"), "tcp");
	CHECK(strstr(file_text(statepath), "session\tgone\tdbl0\tauto\tip\n") !=
	    NULL);
}

static void
test_modify(void)
{
	struct capstats_info info, before;
	const char *r;

	CHECK_STR(field(req("new k filter host 10.0.0.1"), "mode"), "kernel");
	CHECK(seen("k", &before, NULL) == 0);
	dbl_sleep(3 * SEC);
	CHECK_STR(req("modify k host 10.0.0.2 or host 10.0.0.3"), "ok\n");
	r = req("show k");
	CHECK_STR(field(r, "filter"), "host 10.0.0.2 or host 10.0.0.3");
	CHECK(strtoull(field(r, "modified"), NULL, 10) == dbl_real);
	CHECK(strtoull(field(r, "created"), NULL, 10) == dbl_real - 3 * SEC);
	CHECK_STR(field(r, "mode"), "kernel");
	CHECK(seen("k", &info, NULL) == 0);
	CHECK_STR(info.filter, "host 10.0.0.2 or host 10.0.0.3");
	CHECK(info.config_gen > before.config_gen &&
	    info.session_id == before.session_id);
	CHECK(strstr(file_text(statepath), "\tk\tdbl0\tauto\thost 10.0.0.2 or "
	    "host 10.0.0.3\n") != NULL);

	/* Refused filters leave the session as it was. */
	r = req("modify k tcp port");
	CHECK_MSG(strncmp(r, "error\tbadfilter\tfilter 'tcp port': ", 35) == 0,
	    "%s", r);
	CHECK_STR(field(req("show k"), "filter"),
	    "host 10.0.0.2 or host 10.0.0.3");
	/* The kernel's refusal moves an auto session to libpcap... */
	CHECK_STR(req("modify k ip[0] & 0xf != 5"), "ok\n");
	r = req("show k");
	CHECK_STR(field(r, "mode"), "pcap");
	CHECK(strncmp(field(r, "mode_reason"), "kernel path refused: ", 21) == 0);
	CHECK_STR(field(r, "filter"), "ip[0] & 0xf != 5");
	CHECK(seen("k", &info, NULL) == 0 && info.mode == CAPSTATS_MODE_PCAP &&
	    info.flags == CAPSTATS_F_MODE_FALLBACK);
	/* ...and on libpcap it stays. */
	CHECK_STR(req("modify k ip"), "ok\n");
	CHECK_STR(field(req("show k"), "mode"), "pcap");
	/* A session that asked for the kernel's refuses it. */
	CHECK_STR(field(req("new kk mode kernel filter ip"), "mode"), "kernel");
	r = req("modify kk ip[0] & 0xf != 5");
	CHECK(strncmp(r, "error\tbadfilter\tinstruction ", 28) == 0);
	r = req("show kk");
	CHECK_STR(field(r, "filter"), "ip");
	CHECK_STR(field(r, "mode"), "kernel");
	/* The empty filter. */
	CHECK_STR(req("modify kk"), "ok\n");
	CHECK_STR(field(req("show kk"), "filter"), "");
	CHECK(dbl_paths_open == 2);
}

static void
test_stop(void)
{
	struct capstats_info info;
	struct capstats_ref ref;
	char want[256];
	int slot;

	CHECK_STR(field(req("new a filter ip"), "slot"), "0");
	CHECK(seen("a", &info, &ref) == 0);
	CHECK_STR(req("stop a"), "ok\n");
	CHECK(dbl_logged("session a: stopped at 0 packets, 0 bytes"));
	CHECK_STR(req("show a"), "error\tnosession\tno session named a\n");
	CHECK(seen("a", &info, NULL) == -1);
	CHECK(seen_state(&ref) == CAPSTATS_STOPPED);
	CHECK_STR(file_text(statepath), "# capstats state 1\n");
	/*
	 * A stopped session's entry is not reused within 2 s: with every
	 * entry used once and stopped, the segment takes no session...
	 */
	for (slot = 1; slot < TEST_SLOTS; slot++) {
		if (atoi(field(req("new a filter"), "slot")) != slot ||
		    strcmp(req("stop a"), "ok\n") != 0)
			break;
		dbl_log_clear();
	}
	CHECK(slot == TEST_SLOTS);
	CHECK(seen_state(&ref) == CAPSTATS_STOPPED);
	snprintf(want, sizeof(want), "error\tfull\tno free entry in the segment: "
	    "stopped sessions' entries are reused 2 s after stop\n");
	CHECK_STR(req("new a filter"), want);
	CHECK(sess_find("a") == NULL);
	/* ...until 2 s have passed. */
	dbl_sleep(2 * SEC - 1);
	CHECK_STR(req("new a filter"), want);
	dbl_sleep(1);
	CHECK_STR(field(req("new a filter"), "slot"), "0");
	CHECK_STR(field(req("show a"), "session_id"), "1025");
	CHECK(seen_state(&ref) == UINT32_MAX);	/* gone: the slot is another's */
}

/* A session whose capture fails after it started: in error, and it tries again. */
static void
test_failed(void)
{
	const char *r;
	struct sess *s;

	CHECK_STR(field(req("new f interface flaky0 filter ip"), "mode"),
	    "kernel");
	dbl_turn();		/* its socket's failure comes in */
	r = req("show f");
	CHECK_STR(field(r, "state"), "error");
	CHECK_STR(field(r, "error"), "flaky0: capture socket: Network is down"
	    "    [0m");
	CHECK(strstr(req("list"), "\tstate=error\t") != NULL);
	CHECK(dbl_logged("; trying again in 1 s"));
	CHECK((s = sess_find("f")) != NULL && s->retry_ns == SEC);
	/* Not before its time; then it counts, and fails again. */
	sess_tick(dbl_mono);
	CHECK(TAILQ_EMPTY(&dbl_jobs));
	dbl_sleep(SEC);
	sess_tick(dbl_mono);
	CHECK(!TAILQ_EMPTY(&dbl_jobs));
	dbl_turn();
	CHECK_STR(field(req("show f"), "state"), "running");
	CHECK(dbl_logged("session f: counting on flaky0 (kernel)"));
	dbl_turn();
	CHECK_STR(field(req("show f"), "state"), "error");
	/* A modify of a session in error takes its new filter at once. */
	CHECK_STR(req("modify f udp"), "ok\n");
	CHECK_STR(field(req("show f"), "filter"), "udp");
	CHECK(!TAILQ_EMPTY(&dbl_jobs));
}

static void
test_failures(void)
{
	char missing[PATH_MAX + 32];

	dbl_compile_nomem = true;
	CHECK_STR(req("new a filter ip"), "error\tnomem\tout of memory\n");
	dbl_compile_nomem = false;
	CHECK_STR(field(req("new a filter ip"), "session"), "a");
	dbl_compile_nomem = true;
	CHECK_STR(req("modify a tcp"), "error\tnomem\tout of memory\n");
	dbl_compile_nomem = false;

	/* A session the state file cannot hold is not kept. */
	snprintf(missing, sizeof(missing), "%s/missing/state", dir);
	state_init(missing);
	CHECK_STR(req("new b filter ip"), "error\tinternal\tcannot save the "
	    "state file; session b not created\n");
	CHECK(sess_find("b") == NULL);
	CHECK(dbl_logged("/missing/state.new: No such file or directory"));
	CHECK_STR(req("modify a tcp"), "ok\n");
	CHECK(dbl_logged("session a: the new filter is not saved"));
	CHECK_STR(req("stop a"), "ok\n");
	CHECK(dbl_logged("the stop is not saved"));
	/* The file as it was before: the next change saves all. */
	state_init(statepath);
	CHECK_STR(file_text(statepath), "# capstats state 1\n"
	    "session\ta\tdbl0\tauto\tip\n");
	CHECK_STR(field(req("new c filter"), "session"), "c");
	CHECK_STR(file_text(statepath), "# capstats state 1\n"
	    "session\tc\tdbl0\tauto\t\n");
}

/* Each test on a daemon of its own. */
static void
run(void (*test)(void), const char *name)
{
	int before = failures;

	up();
	test();
	down();
	if (failures > before)
		fprintf(stderr, "%s: the daemon's log:\n%s", name,
		    dbl_log_text());
	dbl_log_clear();
}

#define RUN(test)	run(test, #test)

int
main(void)
{
	char err[512];

	if (dbl_as_root(err, sizeof(err)) == -1) {
		printf("SKIP: test_cmd: %s\n", err);
		return CHECK_SKIP;
	}
	snprintf(shmname, sizeof(shmname), "capstats-unit-%ld-cmd",
	    (long)getpid());
	snprintf(dir, sizeof(dir), "/dev/shm/%s.XXXXXX", shmname);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		return 1;
	}
	snprintf(statepath, sizeof(statepath), "%s/state", dir);

	RUN(test_requests);
	RUN(test_new_words);
	RUN(test_new);
	RUN(test_kernel_missing);
	RUN(test_later);
	RUN(test_modify);
	RUN(test_stop);
	RUN(test_failed);
	RUN(test_failures);

	/* Nothing is left behind. */
	snprintf(err, sizeof(err), "/dev/shm/%s", shmname);
	CHECK(access(err, F_OK) == -1 && errno == ENOENT);
	CHECK(unlink(statepath) == 0 && rmdir(dir) == 0);
	return check_done("test_cmd");
}
