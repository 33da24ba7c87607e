/*
 * test_state.c: the state file (daemon/state.c) over the real sessions and
 * segment (tests/unit/doubles.c): what a restore makes of good, damaged
 * and untrusted files, what it keeps aside and logs, and what a save
 * writes. The file of a user other than root is tried first, as the user
 * who runs the test; the rest needs root, or a user namespace of its own.
 */
#include "doubles.c"

#include <sys/stat.h>

#include <dirent.h>
#include <limits.h>

#include "check.h"

#define MAX_SESSIONS	4
#define HEADER		"# capstats state 1\n"

static char dir[PATH_MAX], shmname[64];

/* DIR/NAME, in one of a few buffers. */
static const char *
at(const char *name)
{
	static char buf[4][PATH_MAX + 64];
	static unsigned i;
	char *p = buf[i++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static int
put(const char *file, const char *data, size_t len, mode_t mode)
{
	int fd, rc = 0;

	unlink(file);
	if ((fd = open(file, O_WRONLY | O_CREAT | O_EXCL, mode)) == -1)
		return -1;
	if (write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) == -1)
		rc = -1;
	close(fd);
	return rc;
}

#define PUT(file, text)	put(file, text, sizeof(text) - 1, 0600)

/* FILE's contents, NUL bytes and all; its length in *LEN. */
static const char *
slurp(const char *file, size_t *len)
{
	static char text[16 << 10];
	ssize_t n;
	int fd;

	*len = 0;
	if ((fd = open(file, O_RDONLY)) == -1)
		return "(no file)";
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	*len = n > 0 ? (size_t)n : 0;
	text[*len] = '\0';
	return text;
}

static const char *
text_of(const char *file)
{
	size_t len;

	return slurp(file, &len);
}

/* How many copies of FILE were kept aside, and the last one's name. */
static int
kept(const char *file, char *copy, size_t copylen)
{
	const char *base = strrchr(file, '/') + 1;
	char prefix[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(prefix, sizeof(prefix), "%s.bad.", base);
	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			n++;
			snprintf(copy, copylen, "%s/%s", dir, de->d_name);
		}
	closedir(d);
	return n;
}

/* Is the copy kept of FILE the LEN bytes of WANT? */
static bool
kept_is(const char *file, const char *want, size_t len)
{
	char copy[PATH_MAX + 300];
	const char *got;
	size_t glen;

	if (kept(file, copy, sizeof(copy)) != 1)
		return false;
	got = slurp(copy, &glen);
	return glen == len && memcmp(got, want, len) == 0;
}

/* The sessions in the table, as "name/iface/mode/state/filter;" each. */
static const char *
table(void)
{
	static char buf[16 << 10];
	const struct sess *s;
	size_t n = 0;

	buf[0] = '\0';
	TAILQ_FOREACH(s, &sessions, entry)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s/%s/%s/%s/%s;",
		    s->name, s->iface, sess_mode_word(s->want),
		    sess_state_word(s->state), s->filter);
	return buf;
}

static void
up(const char *statepath)
{
	char err[512];

	dbl_log_clear();
	if (dbl_start(shmname, MAX_SESSIONS, statepath, err, sizeof(err)) == -1) {
		fprintf(stderr, "test_state: %s\n", err);
		exit(1);
	}
}

static void
down(void)
{
	int before = failures;

	dbl_stop();
	CHECK(dbl_paths_open == 0);
	if (failures > before)
		fprintf(stderr, "the daemon's log:\n%s", dbl_log_text());
	dbl_log_clear();
}

/* Run before becoming root: the file is the user's. */
static void
test_not_roots(void)
{
	static const char good[] = HEADER "session\ta\teth0\tauto\tip\n";
	const char *file = at("users");
	char want[128];
	struct stat st;

	CHECK(PUT(file, good) == 0);
	if (geteuid() == 0)
		CHECK(chown(file, 65534, 65534) == 0);
	CHECK(stat(file, &st) == 0 && st.st_uid != 0);
	state_init(file);
	state_restore();
	snprintf(want, sizeof(want), ": owned by uid %u, not root; nothing "
	    "restored from it", (unsigned)st.st_uid);
	CHECK(dbl_logged(want));
	CHECK(TAILQ_EMPTY(&sessions));
	CHECK(kept_is(file, good, sizeof(good) - 1));
	CHECK(dbl_logged(": damaged; a copy is kept as "));
	/* In its place, a file of its own: no session. */
	CHECK_STR(text_of(file), HEADER);
	CHECK(stat(file, &st) == 0 && st.st_uid == geteuid() &&
	    (st.st_mode & 07777) == 0600);
	dbl_log_clear();
}

static void
test_round_trip(void)
{
	static const char good[] = HEADER
	    "session\tweb\teth0\tauto\ttcp port 80 or tcp port 443\n"
	    "session\tall\tany\tpcap\t\n"
	    "session\tdns\tlo\tkernel\tudp  port  53\n"
	    "session\tx.y-z_1\teth0.100\tauto\tip[0] & 0xf != 5\n";
	const char *file = at("round");
	struct stat st;

	CHECK(PUT(file, good) == 0);
	up(file);
	state_restore();
	/* Listed at once, counting once compiled. */
	CHECK_STR(table(), "web/eth0/auto/error/tcp port 80 or tcp port 443;"
	    "all/any/pcap/error/;dns/lo/kernel/error/udp  port  53;"
	    "x.y-z_1/eth0.100/auto/error/ip[0] & 0xf != 5;");
	CHECK_STR(sess_find("web")->error, "starting: the filter is compiling");
	CHECK(dbl_logged("state file ") &&
	    dbl_logged("/round: 4 sessions restored, 0 lines not"));
	CHECK(kept(file, NULL, 0) == 0);
	CHECK_STR(text_of(file), good);
	dbl_settle();
	CHECK_STR(table(), "web/eth0/auto/running/tcp port 80 or tcp port 443;"
	    "all/any/pcap/running/;dns/lo/kernel/running/udp  port  53;"
	    "x.y-z_1/eth0.100/auto/running/ip[0] & 0xf != 5;");
	CHECK(sess_find("web")->mode == CAPSTATS_MODE_KERNEL &&
	    sess_find("all")->mode == CAPSTATS_MODE_PCAP &&
	    sess_find("dns")->mode == CAPSTATS_MODE_KERNEL &&
	    sess_find("x.y-z_1")->mode == CAPSTATS_MODE_PCAP);
	CHECK_STR(sess_find("web")->error, "");
	/* A save writes what was read, whole, and nothing beside it. */
	CHECK(state_save() == 0);
	CHECK_STR(text_of(file), good);
	CHECK(stat(file, &st) == 0 && (st.st_mode & 07777) == 0600);
	CHECK(access(at("round.new"), F_OK) == -1);
	down();
	/* The next start restores the same. */
	up(file);
	state_restore();
	dbl_settle();
	CHECK_STR(table(), "web/eth0/auto/running/tcp port 80 or tcp port 443;"
	    "all/any/pcap/running/;dns/lo/kernel/running/udp  port  53;"
	    "x.y-z_1/eth0.100/auto/running/ip[0] & 0xf != 5;");
	down();
}

/* Each kind of damage on a line of its own; the good lines around it are restored. */
static void
test_damaged(void)
{
	char data[8192], longline[STATE_LINE_MAX + 64], want[256];
	const char *file = at("damaged");
	size_t len;
	unsigned i;
	static const struct {
		const char	*line;	/* without its LF */
		size_t		 len;
		const char	*why;
	} lines[] = {
#define L(s, why)	{ s, sizeof(s) - 1, why }
		L("session\tg1\teth0\tauto\tip", NULL),
		L("garbage", "not a session line"),
		L("SESSION\tb\teth0\tauto\tip", "not a session line"),
		L("session\tb\teth0\tauto", "not a session line"),
		L("session\ta/b\teth0\tauto\tip", "bad session name"),
		L("session\t\teth0\tauto\tip", "bad session name"),
		L("session\tb\te th0\tauto\tip", "bad interface name"),
		L("session\tb\t\tauto\tip", "bad interface name"),
		L("session\tb\teth0\tfast\tip", "bad counting path"),
		L("session\tb\teth0\tauto\tip\x01", "bad filter text"),
		L("session\tb\teth0\tauto\tip\r", "bad filter text"),
		L("session\tb\teth0\tauto\tip\tand", "bad filter text"),
		L("", NULL),
		L("session\tg2\tnosuch0\tpcap\tudp", NULL),
		L("session\tg2\teth0\tauto\tip", "session named twice"),
		L("session\tb\teth0\tauto\ti\0p", "has a NUL byte"),
		{ NULL, 0, "too long" },
		L("session\tg3\teth0\tkernel\t", NULL),
#undef L
	};

	memcpy(data, HEADER, len = strlen(HEADER));
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (lines[i].line == NULL) {
			snprintf(longline, sizeof(longline), "session\tb\teth0\t"
			    "auto\t%0*d", STATE_LINE_MAX, 0);
			memcpy(data + len, longline, strlen(longline));
			len += strlen(longline);
		} else {
			memcpy(data + len, lines[i].line, lines[i].len);
			len += lines[i].len;
		}
		data[len++] = '\n';
	}
	/* The last line has no end. */
	memcpy(data + len, "session\tz\teth0\tauto\tip", 22);
	len += 22;
	CHECK(put(file, data, len, 0600) == 0);
	up(file);
	state_restore();
	CHECK_STR(table(), "g1/eth0/auto/error/ip;g2/nosuch0/pcap/error/udp;"
	    "g3/eth0/kernel/error/;");
	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (lines[i].why == NULL)
			continue;
		snprintf(want, sizeof(want), "/damaged line %u: %s; not restored",
		    i + 2, lines[i].why);
		CHECK_MSG(dbl_logged(want), "%s\n", want);
	}
	snprintf(want, sizeof(want), "/damaged line %u: truncated: no end of "
	    "line; not restored", i + 2);
	CHECK(dbl_logged(want));
	CHECK(dbl_logged("/damaged: 3 sessions restored, 15 lines not"));
	CHECK(!dbl_logged("no header"));
	/* Kept aside as it was; in its place, what could be read. */
	CHECK(kept_is(file, data, len));
	CHECK_STR(text_of(file), HEADER "session\tg1\teth0\tauto\tip\n"
	    "session\tg2\tnosuch0\tpcap\tudp\n" "session\tg3\teth0\tkernel\t\n");
	/* A session that cannot start yet stays, in error, and tries again. */
	dbl_settle();
	CHECK_STR(table(), "g1/eth0/auto/running/ip;g2/nosuch0/pcap/error/udp;"
	    "g3/eth0/kernel/running/;");
	CHECK_STR(sess_find("g2")->error, "nosuch0: no such interface");
	CHECK(dbl_logged("session g2: nosuch0: no such interface; trying again "
	    "in 1 s"));
	down();
}

static void
test_no_header(void)
{
	static const char data[] = "session\ta\teth0\tauto\tip\n";
	const char *file = at("headless");

	CHECK(PUT(file, data) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/headless: no header"));
	CHECK(dbl_logged("/headless: 1 sessions restored, 1 lines not"));
	CHECK_STR(table(), "a/eth0/auto/error/ip;");
	CHECK(kept_is(file, data, sizeof(data) - 1));
	CHECK_STR(text_of(file), HEADER "session\ta\teth0\tauto\tip\n");
	down();

	/* The header is only a header on the first line. */
	file = at("twoheaders");
	CHECK(PUT(file, HEADER HEADER) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/twoheaders line 2: not a session line"));
	CHECK(kept(file, NULL, 0) == 1);
	down();
}

/*
 * Sessions over the limit at start are held: not counted, but their lines
 * stay in the file, after the running sessions, for a start with a larger
 * -n; nothing is kept aside, as nothing is damaged. A new session of a
 * held one's name replaces it.
 */
static void
test_limit(void)
{
	static const char data[] = HEADER "session\ta\te0\tauto\tip\n"
	    "session\tb\te0\tauto\tip\n" "session\tc\te0\tauto\tip\n"
	    "session\td\te0\tauto\tip\n" "session\te\te0\tauto\tip\n"
	    "session\tf\te0\tkernel\tudp port 9\n";
	static const char after[] = HEADER "session\ta\te0\tauto\tip\n"
	    "session\tb\te0\tauto\tip\n" "session\tc\te0\tauto\tip\n"
	    "session\te\te0\tpcap\ttcp\n"
	    "session\tf\te0\tkernel\tudp port 9\n";
	const struct sess_waiter none = { NULL, 0 };
	const char *file = at("limit");
	char err[512];

	CHECK(PUT(file, data) == 0);
	up(file);
	state_restore();
	CHECK_STR(table(), "a/e0/auto/error/ip;b/e0/auto/error/ip;"
	    "c/e0/auto/error/ip;d/e0/auto/error/ip;");
	CHECK(dbl_logged("/limit: session e: over the session limit (4); "
	    "held in the file, not counted"));
	CHECK(dbl_logged("/limit: session f: over the session limit (4); "
	    "held in the file, not counted"));
	CHECK(dbl_logged("/limit: 2 sessions held until a start with a "
	    "larger -n"));
	CHECK(dbl_logged("/limit: 4 sessions restored, 0 lines not"));
	CHECK(kept(file, NULL, 0) == 0);
	CHECK_STR(text_of(file), data);

	/* A stop makes room, but the held stay held until the next start. */
	sess_stop(sess_find("d"));
	CHECK(state_save() == 0);
	CHECK(strstr(text_of(file), "\td\t") == NULL);
	CHECK(strstr(text_of(file), "session\te\te0\tauto\tip\n") != NULL);
	/* A new session named as a held one takes its place. */
	CHECK(sess_new("e", "e0", SESS_PCAP, "tcp", &none, err,
	    sizeof(err)) == CTL_OK);
	CHECK(state_save() == 0);	/* still compiling: e is held yet */
	CHECK(strstr(text_of(file), "session\te\te0\tauto\tip\n") != NULL);
	dbl_settle();
	CHECK(state_save() == 0);
	CHECK(dbl_logged("/limit: held session e is replaced by the new "
	    "session of that name"));
	CHECK_STR(text_of(file), after);
	down();

	/* The next start restores what fits and holds the rest again. */
	up(file);
	state_restore();
	CHECK_STR(table(), "a/e0/auto/error/ip;b/e0/auto/error/ip;"
	    "c/e0/auto/error/ip;e/e0/pcap/error/tcp;");
	CHECK(dbl_logged("/limit: 1 sessions held until a start with a "
	    "larger -n"));
	CHECK_STR(text_of(file), after);
	CHECK(kept(file, NULL, 0) == 0);
	down();

	/* A name held twice is a damaged file, as a name restored twice is. */
	file = at("limit2");
	CHECK(PUT(file, HEADER "session\ta\te0\tauto\tip\n"
	    "session\tb\te0\tauto\tip\n" "session\tc\te0\tauto\tip\n"
	    "session\td\te0\tauto\tip\n" "session\te\te0\tauto\tip\n"
	    "session\te\te0\tauto\ttcp\n") == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/limit2 line 7: session named twice; not restored"));
	CHECK(kept(file, NULL, 0) == 1);
	CHECK(strstr(text_of(file), "session\te\te0\tauto\tip\n") != NULL);
	CHECK(strstr(text_of(file), "\ttcp\n") == NULL);
	down();
}

/* Nothing to restore: no file, an empty one, a header alone. */
static void
test_nothing(void)
{
	const char *file = at("none");

	up(file);
	state_restore();
	CHECK_STR(dbl_log_text(), "");
	CHECK_STR(text_of(file), "(no file)");
	down();

	file = at("empty");
	CHECK(put(file, "", 0, 0600) == 0);
	up(file);
	state_restore();
	CHECK_STR(dbl_log_text(), "");
	CHECK_STR(text_of(file), HEADER);
	CHECK(kept(file, NULL, 0) == 0);
	down();

	file = at("header");
	CHECK(PUT(file, HEADER) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/header: 0 sessions restored, 0 lines not"));
	CHECK(!dbl_logged("not restored") && kept(file, NULL, 0) == 0);
	CHECK_STR(text_of(file), HEADER);
	down();
}

/* Files root did not write alone: nothing is restored from them. */
static void
test_untrusted(void)
{
	static const char good[] = HEADER "session\ta\teth0\tauto\tip\n";
	const char *file;
	char copy[PATH_MAX + 300];
	struct stat st;

	file = at("groupw");
	CHECK(put(file, good, sizeof(good) - 1, 0620) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/groupw: writable by group or others; nothing "
	    "restored from it"));
	CHECK(TAILQ_EMPTY(&sessions));
	CHECK(kept_is(file, good, sizeof(good) - 1));
	CHECK_STR(text_of(file), HEADER);
	CHECK(stat(file, &st) == 0 && (st.st_mode & 07777) == 0600);
	down();

	file = at("otherw");
	CHECK(put(file, good, sizeof(good) - 1, 0602) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/otherw: writable by group or others"));
	CHECK(TAILQ_EMPTY(&sessions));
	down();

	/* A directory: a note of it is kept, and it stays. */
	file = at("adir");
	CHECK(mkdir(file, 0700) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/adir: not a regular file; nothing restored"));
	CHECK(TAILQ_EMPTY(&sessions));
	CHECK(stat(file, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK(kept(file, copy, sizeof(copy)) == 1 && unlink(copy) == 0);
	down();
	CHECK(rmdir(file) == 0);

	/* A FIFO: not waited on, moved aside, and a state file in its place. */
	file = at("fifo");
	CHECK(mkfifo(file, 0600) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/fifo: not a regular file; nothing restored"));
	CHECK(TAILQ_EMPTY(&sessions));
	CHECK(kept(file, copy, sizeof(copy)) == 1 &&
	    stat(copy, &st) == 0 && S_ISFIFO(st.st_mode) && unlink(copy) == 0);
	CHECK_STR(text_of(file), HEADER);
	down();

	/* A link is never followed, nor replaced. */
	file = at("link");
	CHECK(PUT(at("target"), good) == 0);
	CHECK(symlink(at("target"), file) == 0);
	up(file);
	state_restore();
	CHECK(dbl_logged("/link: Too many levels of symbolic links"));
	CHECK(TAILQ_EMPTY(&sessions));
	CHECK(lstat(file, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK_STR(text_of(at("target")), good);
	down();
}

static void
test_save_fails(void)
{
	static const char good[] = HEADER "session\ta\teth0\tauto\tip\n";
	const char *file = at("saved");

	CHECK(PUT(file, good) == 0);
	up(file);
	state_restore();
	dbl_settle();
	CHECK_STR(table(), "a/eth0/auto/running/ip;");
	/* Where the new file would go, a directory: the old file stays. */
	CHECK(mkdir(at("saved.new"), 0700) == 0);
	sess_stop(sess_find("a"));
	CHECK(state_save() == -1);
	CHECK(dbl_logged("/saved.new: Is a directory"));
	CHECK_STR(text_of(file), good);
	CHECK(rmdir(at("saved.new")) == 0);
	CHECK(state_save() == 0);
	CHECK_STR(text_of(file), HEADER);
	/* No directory at all. */
	state_init(at("gone/state"));
	CHECK(state_save() == -1);
	CHECK(dbl_logged("/gone/state.new: No such file or directory"));
	down();
}

/* A restored session whose capture cannot open waits longer each time. */
static void
test_backoff(void)
{
	static const char data[] = HEADER "session\tf\tflaky0\tpcap\tip\n";
	const char *file = at("flaky");
	struct sess *s;
	uint64_t wait;

	CHECK(PUT(file, data) == 0);
	up(file);
	state_restore();
	dbl_settle();
	CHECK((s = sess_find("f")) != NULL);
	for (wait = SEC; s != NULL && wait <= 8 * SEC; wait *= 2) {
		CHECK(s->state == CAPSTATS_ERROR && s->retry_ns == wait &&
		    s->retry_at == dbl_mono + wait);
		dbl_sleep(wait - 1);
		sess_tick(dbl_mono);
		CHECK(TAILQ_EMPTY(&dbl_jobs));
		dbl_sleep(1);
		sess_tick(dbl_mono);
		CHECK(!TAILQ_EMPTY(&dbl_jobs));
		dbl_settle();
	}
	CHECK_STR(s->error, "flaky0: " DBL_FLAKY_ERROR);
	/* The same failure again is not logged again. */
	CHECK(dbl_logged("trying again in 1 s"));
	CHECK(!dbl_logged("trying again in 2 s"));
	/* At most 5 minutes. */
	for (wait = 0; wait < 20; wait++) {
		dbl_sleep(s->retry_ns);
		sess_tick(dbl_mono);
		dbl_settle();
	}
	CHECK(s->retry_ns == 300 * SEC);
	CHECK_STR(text_of(file), data);
	down();
}

/* Remove the tests' directory and what they left in it: how much, or -1. */
static int
tidy(void)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0 &&
		    (unlink(at(de->d_name)) == 0 || rmdir(at(de->d_name)) == 0))
			n++;
	closedir(d);
	return rmdir(dir) == 0 ? n : -1;
}

int
main(void)
{
	char err[512];

	snprintf(shmname, sizeof(shmname), "capstats-unit-%ld-state",
	    (long)getpid());
	snprintf(dir, sizeof(dir), "/dev/shm/%s.XXXXXX", shmname);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		return 1;
	}
	test_not_roots();
	if (dbl_as_root(err, sizeof(err)) == -1) {
		printf("SKIP: test_state: all but the file of a user other than "
		    "root: %s\n", err);
		CHECK(tidy() > 0);
		check_done("test_state");
		return failures > 0 ? 1 : CHECK_SKIP;
	}
	test_round_trip();
	test_damaged();
	test_no_header();
	test_limit();
	test_nothing();
	test_untrusted();
	test_save_fails();
	test_backoff();

	CHECK(tidy() > 0);
	snprintf(err, sizeof(err), "/dev/shm/%s", shmname);
	CHECK(access(err, F_OK) == -1);
	return check_done("test_state");
}
