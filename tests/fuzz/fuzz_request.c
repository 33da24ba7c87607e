/*
 * fuzz_request.c: libFuzzer target for the control decoder. The input is
 * the byte stream one client sends over a socket pair, to the daemon's own
 * ctl.c, which admits the client, frames the stream and queues replies;
 * cmd.c answers each line over the real sessions, state file, replies and
 * segment, with doubles only at the bottom (tests/unit/doubles.c). The
 * harness checks each reply, the session table after it and the state
 * file against the table; then the whole stream, what a reader of the
 * segment lists, and that the state file restores the table; then that
 * the same stream cut into other reads gets the same replies.
 *
 * The harness turns the loop itself: a request is taken only once every
 * compile and failure before it has been answered, so that how the bytes
 * arrive never changes what a request sees. One daemon serves every
 * input, and each connection starts with no session.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#include "../unit/doubles.c"

/* ctl.c hands each line to cmd_exec(): the harness steps in to check each reply on its own. */
static void fz_exec(char *line, struct reply *r);
#define cmd_exec fz_exec
#include "../../daemon/ctl.c"
#undef cmd_exec

#define FZ_LIMIT	4	/* -n: small, so that "session limit reached" is within reach */
#define FZ_STEP_NS	1000	/* the clocks move this much at each request */
#define FZ_FREE		6	/* segment entries for sessions */

static char fz_shm[64], fz_dir[PATH_MAX], fz_state[PATH_MAX + 16];
static struct capstats *fz_reader;	/* of the segment, open throughout */

/* ------------------------------------------------------------ the daemon */

/*
 * Counters near the top of their range, so every digit of a reply is
 * used; from the name, so that they are the same in every run.
 */
static void
fz_counts(void)
{
	struct sess *s;
	uint64_t h;
	const char *p;

	TAILQ_FOREACH(s, &sessions, entry) {
		for (h = 0xcbf29ce484222325ull, p = s->name; *p != '\0'; p++)
			h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
		s->t.packets = h | 1ull << 63;
		s->t.bytes = ~s->t.packets;
		s->t.last_packet_ns = dbl_real;
		s->t.drops = h >> 40;
		s->t.if_drops = h << 32;
		s->t.drops_base = UINT64_MAX / 2;
		s->t.if_drops_base = h >> 8;
	}
}

static unsigned
fz_nsess(void)
{
	const struct sess *s;
	unsigned n = 0;

	TAILQ_FOREACH(s, &sessions, entry)
		n++;
	return n;
}

/* The state file as state_save() would write the table. */
static FZ_NOCOV void
fz_check_state_file(void)
{
	char want[(CTL_FILTER_MAX + 128) * (FZ_LIMIT + 1)], got[sizeof(want)];
	const struct sess *s;
	size_t n = 0;
	ssize_t len;
	int fd;

	n = (size_t)snprintf(want, sizeof(want), "# capstats state 1\n");
	TAILQ_FOREACH(s, &sessions, entry)
		n += (size_t)snprintf(want + n, sizeof(want) - n,
		    "session\t%s\t%s\t%s\t%s\n", s->name, s->iface,
		    sess_mode_word(s->want), s->filter);
	FZ_ASSERT(n < sizeof(want));
	if ((fd = open(fz_state, O_RDONLY | O_CLOEXEC)) == -1) {
		/* Not saved yet: nothing was ever created. */
		FZ_ASSERT(errno == ENOENT && TAILQ_EMPTY(&sessions));
		return;
	}
	len = read(fd, got, sizeof(got));
	close(fd);
	FZ_ASSERT(len >= 0 && (size_t)len == n && memcmp(got, want, n) == 0);
}

/* The table after every request: what sess.c guarantees its readers. */
static FZ_NOCOV void
fz_check_table(void)
{
	const struct sess *s, *t;
	unsigned n = 0, running = 0;

	TAILQ_FOREACH(s, &sessions, entry) {
		n++;
		running += s->state == CAPSTATS_RUNNING;
		FZ_ASSERT(ctl_valid_name(s->name) && ctl_valid_iface(s->iface));
		FZ_ASSERT(ctl_valid_filter(s->filter));
		FZ_ASSERT(s->want == SESS_AUTO || s->want == SESS_PCAP ||
		    s->want == SESS_KERNEL);
		FZ_ASSERT(s->state == CAPSTATS_RUNNING ||
		    s->state == CAPSTATS_ERROR);
		FZ_ASSERT((s->state == CAPSTATS_ERROR) == (s->error[0] != '\0'));
		FZ_ASSERT(s->path == &pcap_path || s->path == &kernel_path);
		FZ_ASSERT(s->want != SESS_KERNEL || s->path == &kernel_path);
		FZ_ASSERT(s->want != SESS_PCAP || s->path == &pcap_path);
		FZ_ASSERT(s->slot < shmw_slots(shm) && s->session_id != 0);
		for (t = TAILQ_NEXT(s, entry); t != NULL; t = TAILQ_NEXT(t, entry)) {
			FZ_ASSERT(strcmp(s->name, t->name) != 0);
			FZ_ASSERT(s->slot != t->slot);
			FZ_ASSERT(s->session_id != t->session_id);
		}
	}
	FZ_ASSERT(n <= cfg.max_sessions && TAILQ_EMPTY(&starting));
	/* A path is open for each session that counts, and no other. */
	FZ_ASSERT(dbl_paths_open == (int)running);
	fz_check_state_file();
}

/* Between requests, no session waits for anything. */
static FZ_NOCOV void
fz_check_quiet(void)
{
	const struct sess *s;

	TAILQ_FOREACH(s, &sessions, entry)
		FZ_ASSERT(s->job == NULL && s->op == OP_NONE &&
		    s->next_filter == NULL && s->waiter.done == NULL);
}

/* ------------------------------------------------------------ reply checks */

enum fz_kind { FZ_ROW, FZ_OK, FZ_ERROR, FZ_HELLO };

/* One reply, as the lines ending it describe it. */
struct fz_block {
	unsigned	 rows;
	bool		 ok;
	char		 code[16];	/* the error's status word */
	const char	*row;		/* the last row, and its length */
	size_t		 rowlen;
};

/* The value of KEY in ROW[0..n), or NULL. */
static FZ_NOCOV const char *
fz_field(const char *row, size_t n, const char *key, size_t *vlen)
{
	const char *p = row, *end = row + n, *tab;
	size_t klen = strlen(key);

	while (p < end) {
		tab = memchr(p, '\t', (size_t)(end - p));
		if (tab == NULL)
			return NULL;
		p = tab + 1;
		tab = memchr(p, '\t', (size_t)(end - p));
		if (tab == NULL)
			tab = end;
		if ((size_t)(tab - p) > klen && memcmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			*vlen = (size_t)(tab - p) - klen - 1;
			return p + klen + 1;
		}
	}
	return NULL;
}

static FZ_NOCOV bool
fz_field_is(const char *row, size_t n, const char *key, const char *want)
{
	const char *v;
	size_t vlen;

	v = fz_field(row, n, key, &vlen);
	return v != NULL && vlen == strlen(want) && memcmp(v, want, vlen) == 0;
}

static FZ_NOCOV bool
fz_field_u64(const char *row, size_t n, const char *key, uint64_t want)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)want);
	return fz_field_is(row, n, key, num);
}

/* "\tkey=value" fields: lower-case keys, each once, values without TAB. */
static FZ_NOCOV void
fz_check_fields(const char *p, size_t n)
{
	const char *keys[32], *end = p + n, *f, *eq;
	size_t klen[32], nkeys = 0, i;

	while (p < end) {
		FZ_ASSERT(*p == '\t');
		f = ++p;
		while (p < end && *p != '\t')
			p++;
		eq = memchr(f, '=', (size_t)(p - f));
		FZ_ASSERT(eq != NULL && eq > f);
		for (i = 0; f + i < eq; i++)
			FZ_ASSERT((f[i] >= 'a' && f[i] <= 'z') || f[i] == '_');
		for (i = 0; i < nkeys; i++)
			FZ_ASSERT(klen[i] != (size_t)(eq - f) ||
			    memcmp(keys[i], f, klen[i]) != 0);
		FZ_ASSERT(nkeys < sizeof(keys) / sizeof(keys[0]));
		keys[nkeys] = f;
		klen[nkeys++] = (size_t)(eq - f);
	}
}

/* One reply line without its LF: a row, "ok", an error or the greeting. */
static FZ_NOCOV enum fz_kind
fz_line(const char *l, size_t n, char code[16])
{
	const char *tab;
	size_t i;

	for (i = 0; i < n; i++)
		FZ_ASSERT(l[i] == '\t' ||
		    ((unsigned char)l[i] >= 0x20 && (unsigned char)l[i] <= 0x7e));
	if (n == 2 && memcmp(l, "ok", 2) == 0)
		return FZ_OK;
	if (n >= 6 && memcmp(l, "error\t", 6) == 0) {
		tab = memchr(l + 6, '\t', n - 6);
		FZ_ASSERT(tab != NULL && (size_t)(tab - (l + 6)) < 16);
		memcpy(code, l + 6, (size_t)(tab - (l + 6)));
		code[tab - (l + 6)] = '\0';
		i = ctl_status_parse(code);
		FZ_ASSERT(i != CTL_NSTATUS && i != CTL_OK);
		/* The message is one field: a TAB in it would be a fourth. */
		FZ_ASSERT(memchr(tab + 1, '\t', (size_t)(l + n - (tab + 1))) == NULL);
		return FZ_ERROR;
	}
	if (n >= 5 && memcmp(l, "hello", 5) == 0) {
		fz_check_fields(l + 5, n - 5);
		FZ_ASSERT(fz_field_u64(l, n, "proto", CTL_PROTO_VERSION));
		FZ_ASSERT(fz_field_u64(l, n, "pid", (uint64_t)getpid()));
		return FZ_HELLO;
	}
	FZ_ASSERT(n >= 3 && memcmp(l, "row", 3) == 0);
	fz_check_fields(l + 3, n - 3);
	return FZ_ROW;
}

/* BUF[0..n) holds exactly one reply: rows, then one "ok" or "error" line. */
static FZ_NOCOV void
fz_block(const char *buf, size_t n, struct fz_block *b)
{
	const char *p = buf, *lf;
	enum fz_kind k;

	memset(b, 0, sizeof(*b));
	FZ_ASSERT(n > 0 && buf[n - 1] == '\n');
	for (;;) {
		lf = memchr(p, '\n', (size_t)(buf + n - p));
		k = fz_line(p, (size_t)(lf - p), b->code);
		FZ_ASSERT(k != FZ_HELLO);
		if (k != FZ_ROW) {
			FZ_ASSERT(lf == buf + n - 1);
			b->ok = k == FZ_OK;
			return;
		}
		b->rows++;
		b->row = p;
		b->rowlen = (size_t)(lf - p);
		FZ_ASSERT(lf < buf + n - 1);
		p = lf + 1;
	}
}

/* A row of S as list or show write it. */
static FZ_NOCOV void
fz_row_is(const char *row, size_t n, const struct sess *s, bool full)
{
	FZ_ASSERT(fz_field_is(row, n, "session", s->name));
	FZ_ASSERT(fz_field_is(row, n, "interface", s->iface));
	FZ_ASSERT(fz_field_is(row, n, "state", sess_state_word(s->state)));
	FZ_ASSERT(fz_field_is(row, n, "mode", s->path->name));
	FZ_ASSERT(fz_field_is(row, n, "filter", s->filter));
	FZ_ASSERT(fz_field_u64(row, n, "packets", s->t.packets));
	FZ_ASSERT(fz_field_u64(row, n, "drops", sess_total_drops(s)));
	if (full) {
		FZ_ASSERT(fz_field_u64(row, n, "slot", s->slot));
		FZ_ASSERT(fz_field_u64(row, n, "session_id", s->session_id));
		FZ_ASSERT(fz_field_u64(row, n, "modified", s->modified_ns));
	}
}

/* Is VERB a command of proto.h's table that the daemon answers? */
static FZ_NOCOV bool
fz_daemon_answers(const char *verb)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].fn != NULL && strcmp(verb, commands[i].name) == 0)
			return true;
	return false;
}

/*
 * Does the reply to REQ agree with what the table did? Only a command the
 * daemon answers succeeds; what each of those it knows did is checked.
 */
static FZ_NOCOV void
fz_agrees(char *req, const struct fz_block *b, unsigned n0,
    const char *replies)
{
	char *verb = req, *name = strchr(req, ' '), *rest = NULL;
	const struct sess *s;
	const char *row;

	if (name != NULL) {
		*name++ = '\0';
		if ((rest = strchr(name, ' ')) != NULL)
			*rest++ = '\0';
	}
	if (!b->ok) {
		FZ_ASSERT(fz_nsess() == n0);
		if (strcmp(b->code, "exists") == 0)
			FZ_ASSERT(name != NULL && sess_find(name) != NULL);
		if (strcmp(b->code, "nosession") == 0)
			FZ_ASSERT(name != NULL && sess_find(name) == NULL);
		return;
	}
	FZ_ASSERT(fz_daemon_answers(verb));
	if (strcmp(verb, "list") == 0) {
		FZ_ASSERT(b->rows == fz_nsess() && fz_nsess() == n0);
		row = replies;
		TAILQ_FOREACH(s, &sessions, entry) {
			fz_row_is(row, (size_t)(strchr(row, '\n') - row), s,
			    false);
			row = strchr(row, '\n') + 1;
		}
		return;
	}
	s = name != NULL ? sess_find(name) : NULL;
	if (strcmp(verb, "new") == 0) {
		FZ_ASSERT(fz_nsess() == n0 + 1 && s != NULL && b->rows == 1);
		FZ_ASSERT(fz_field_is(b->row, b->rowlen, "session", name));
		FZ_ASSERT(fz_field_is(b->row, b->rowlen, "mode", s->path->name));
		FZ_ASSERT(fz_field_u64(b->row, b->rowlen, "slot", s->slot));
		FZ_ASSERT(fz_field_u64(b->row, b->rowlen, "session_id",
		    s->session_id));
	} else if (strcmp(verb, "show") == 0) {
		FZ_ASSERT(fz_nsess() == n0 && s != NULL && b->rows == 1);
		fz_row_is(b->row, b->rowlen, s, true);
	} else if (strcmp(verb, "modify") == 0) {
		FZ_ASSERT(fz_nsess() == n0 && s != NULL && b->rows == 0);
		FZ_ASSERT(strcmp(s->filter, rest != NULL ? rest : "") == 0);
		FZ_ASSERT(s->modified_ns == dbl_real);
	} else if (strcmp(verb, "stop") == 0) {
		FZ_ASSERT(name != NULL && fz_nsess() == n0 - 1 && s == NULL &&
		    b->rows == 0);
	}
}

/* The request whose answer comes later. */
static struct {
	bool		 pending;
	char		 req[CTL_REQUEST_MAX];
	unsigned	 n0;
} fz_later;
static bool fz_failed;		/* a reply could not be built */

/* BUF[0..n) is the reply to REQ, with N0 sessions before it. */
static FZ_NOCOV void
fz_check_reply(char *req, unsigned n0, const char *buf, size_t n)
{
	struct fz_block b;

	fz_check_table();
	fz_block(buf, n, &b);
	fz_agrees(req, &b, n0, buf);
}

static void
fz_exec(char *line, struct reply *r)
{
	char req[CTL_REQUEST_MAX];
	size_t before = r->len, len = strlen(line);
	unsigned n0 = fz_nsess();

	/* What client_read() promises cmd_exec(), and the harness's schedule. */
	FZ_ASSERT(len < CTL_REQUEST_MAX && ctl_printable(line, len));
	FZ_ASSERT(dbl_quiet() && !fz_later.pending && !r->later);
	fz_check_quiet();
	memcpy(req, line, len + 1);
	dbl_sleep(FZ_STEP_NS);
	cmd_exec(line, r);
	if (r->later) {
		memcpy(fz_later.req, req, len + 1);
		fz_later.n0 = n0;
		fz_later.pending = true;
		return;
	}
	/* The daemon drops a client whose reply could not be built. */
	if ((fz_failed = r->failed))
		return;
	fz_check_reply(req, n0, r->buf + before, r->len - before);
	fz_counts();
}

/* The start of the line that ends at END in BUF[FROM..). */
static FZ_NOCOV size_t
fz_line_start(const char *buf, size_t from, size_t end)
{
	while (end > from && buf[end - 1] != '\n')
		end--;
	return end;
}

/*
 * The answer that came later is the last reply in what is queued, unsent
 * replies before it: its last line, and the rows before that.
 */
static void
fz_answered(struct reply *r)
{
	struct client *c = (struct client *)((char *)r -
	    offsetof(struct client, out));
	size_t start, prev;

	FZ_ASSERT(fz_later.pending && !r->later);
	fz_later.pending = false;
	if (!(fz_failed = r->failed)) {
		FZ_ASSERT(r->len > c->outoff && r->buf[r->len - 1] == '\n');
		start = fz_line_start(r->buf, c->outoff, r->len - 1);
		while (start > c->outoff) {
			prev = fz_line_start(r->buf, c->outoff, start - 1);
			if (start - prev < 4 || memcmp(r->buf + prev, "row\t", 4) != 0)
				break;
			start = prev;
		}
		fz_check_reply(fz_later.req, fz_later.n0, r->buf + start,
		    r->len - start);
		fz_counts();
	}
	client_resumed(r);
}

/* ---------------------------------------------------------------- framing */

/*
 * How many replies the stream must get, counted without ctl.c: one per
 * line of at most CTL_REQUEST_MAX bytes with its LF, up to and including
 * the first line with a byte outside 0x20..0x7e or one that is too long.
 * Bytes after the last LF get no reply unless they are already too long.
 */
static FZ_NOCOV size_t
fz_requests(const uint8_t *data, size_t size)
{
	const uint8_t *lf;
	size_t pos = 0, n = 0, len, i;

	if (size == 0)
		return 0;
	for (;;) {
		lf = memchr(data + pos, '\n', size - pos);
		len = lf != NULL ? (size_t)(lf - (data + pos)) : size - pos;
		if (len + 1 > CTL_REQUEST_MAX)
			return n + 1;
		if (lf == NULL)
			return n;
		n++;
		for (i = pos; i < pos + len; i++)
			if (data[i] < 0x20 || data[i] > 0x7e)
				return n;
		pos += len + 1;
	}
}

/*
 * The whole output: the greeting, complete lines, and as many replies as
 * requests; each "instance=" this daemon's.
 */
static FZ_NOCOV void
fz_check_stream(const uint8_t *data, size_t size, const char *out, size_t n)
{
	const char *p, *end = out + n, *lf;
	char code[16], inst[17];
	size_t replies = 0;

	FZ_ASSERT(n > 0 && end[-1] == '\n');
	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)cfg.instance);
	for (p = out; (p = memmem(p, (size_t)(end - p), "\tinstance=", 10)) !=
	    NULL; p += 10)
		FZ_ASSERT(end - p > 26 && memcmp(p + 10, inst, 16) == 0);
	lf = memchr(out, '\n', n);
	FZ_ASSERT(fz_line(out, (size_t)(lf - out), code) == FZ_HELLO);
	for (p = lf + 1; p < end; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end - p));
		switch (fz_line(p, (size_t)(lf - p), code)) {
		case FZ_ROW:
			FZ_ASSERT(lf + 1 < end);
			break;
		case FZ_HELLO:
			FZ_ASSERT(false);
			break;
		default:
			replies++;
		}
	}
	FZ_ASSERT(fz_failed || replies == fz_requests(data, size));
}

/*
 * OUT[0..n) with the values that name an entry of the segment or a time
 * made "*": what must be the same whichever entries the run was given.
 */
static FZ_NOCOV size_t
fz_normalize(char *out, size_t n)
{
	static const char *const keys[] = { "slot", "session_id", "created",
	    "modified", "last_packet" };
	char *r = out, *w = out, *end = out + n, *eq;
	size_t i, k;

	while (r < end) {
		*w++ = *r++;
		if (r[-1] != '\t' || (eq = memchr(r, '=', (size_t)(end - r))) ==
		    NULL)
			continue;
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			k = strlen(keys[i]);
			if ((size_t)(eq - r) == k && memcmp(r, keys[i], k) == 0)
				break;
		}
		if (i == sizeof(keys) / sizeof(keys[0]))
			continue;
		memmove(w, r, k + 1);
		w += k + 1;
		*w++ = '*';
		for (r = eq + 1; r < end && *r != '\t' && *r != '\n'; r++)
			;
	}
	return (size_t)(w - out);
}

/* What a reader of the segment lists is the table. */
static FZ_NOCOV void
fz_check_segment(void)
{
	struct capstats_ref ref = { .slot = UINT32_MAX };
	struct capstats_info info;
	const struct sess *s;
	unsigned n = 0;

	FZ_ASSERT(capstats_check(fz_reader, 0) == CAPSTATS_OK);
	while (capstats_next(fz_reader, &ref, &info) == CAPSTATS_OK) {
		FZ_ASSERT((s = sess_find(info.name)) != NULL);
		FZ_ASSERT(info.slot == s->slot && info.session_id ==
		    s->session_id && info.state == s->state);
		FZ_ASSERT(strcmp(info.iface, s->iface) == 0);
		FZ_ASSERT(strncmp(info.filter, s->filter,
		    CAPSTATS_SHM_FILTER_MAX) == 0);
		FZ_ASSERT(((info.flags & CAPSTATS_F_FILTER_TRUNCATED) != 0) ==
		    (strlen(s->filter) > CAPSTATS_SHM_FILTER_MAX));
		n++;
	}
	FZ_ASSERT(n == fz_nsess());
}

/* Each session's name, interface, mode and filter, in order. */
static FZ_NOCOV void
fz_table(char *buf, size_t len)
{
	const struct sess *s;
	size_t n = 0;

	buf[0] = '\0';
	TAILQ_FOREACH(s, &sessions, entry)
		n += (size_t)snprintf(buf + n, len - n, "%s %s %s %s\n", s->name,
		    s->iface, sess_mode_word(s->want), s->filter);
	FZ_ASSERT(n < len);
}

static void
fz_stop_all(void)
{
	while (!TAILQ_EMPTY(&sessions))
		sess_stop(TAILQ_FIRST(&sessions));
}

/*
 * What a restart restores is the table: its sessions stop as the
 * daemon's end leaves them, in the state file, and come back from it a
 * moment later. Leaves no session.
 */
static FZ_NOCOV void
fz_check_restart(void)
{
	char before[(CTL_FILTER_MAX + 128) * (FZ_LIMIT + 1)], after[sizeof(before)];
	char summary[PATH_MAX + 64];
	unsigned n = fz_nsess();

	fz_table(before, sizeof(before));
	fz_stop_all();
	dbl_sleep(SHMW_REUSE_NS);
	dbl_log_clear();
	state_restore();
	dbl_settle();
	fz_table(after, sizeof(after));
	FZ_ASSERT(strcmp(before, after) == 0);
	snprintf(summary, sizeof(summary), "state file %s: %u sessions "
	    "restored, 0 lines not", fz_state, n);
	FZ_ASSERT(dbl_logged(summary) || (n == 0 && access(fz_state, F_OK) == -1));
	fz_stop_all();
}

/*
 * One client's connection: DATA goes into a socket pair in writes of
 * CHUNK bytes; the harness runs what epoll reports, settles the loop, and
 * reads what the daemon sent into *OUT, which the caller frees. With
 * CHECK, also the segment and a restart at the end. Starts with no
 * session and an entry for each that was stopped before; ends with none.
 */
static void
fz_connection(const uint8_t *data, size_t size, size_t chunk, bool check,
    char **out, size_t *outlen)
{
	struct epoll_event evs[8];
	struct evsrc *src;
	size_t off = 0, turns = 0, cap = 0;
	bool shut = false;
	ssize_t n;
	int sv[2], i, nev;

	*out = NULL;
	*outlen = 0;
	dbl_sleep(SHMW_REUSE_NS);
	dbl_log_clear();
	unlink(fz_state);
	fz_failed = false;
	FZ_ASSERT(TAILQ_EMPTY(&sessions) && nclients == 0 && dbl_quiet());
	FZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv) == 0);
	client_new(sv[0]);
	FZ_ASSERT(nclients == 1);
	TAILQ_FIRST(&clients)->out.answered = fz_answered;
	for (;;) {
		if (off < size) {
			n = write(sv[1], data + off,
			    size - off < chunk ? size - off : chunk);
			FZ_ASSERT(n > 0 || (n == -1 && errno == EAGAIN));
			if (n > 0)
				off += (size_t)n;
		}
		if (off == size && !shut) {
			FZ_ASSERT(shutdown(sv[1], SHUT_WR) == 0);
			shut = true;
		}
		/* What the loop would run: the events, then each request in turn. */
		nev = epoll_wait(epfd, evs, 8, 0);
		for (i = 0; i < nev; i++) {
			src = evs[i].data.ptr;
			if (src->fd != -1)
				src->fn(src, evs[i].events);
		}
		dbl_settle();
		while (nmore > 0) {
			ctl_run_pending();
			dbl_settle();
		}
		loop_bury();
		do {
			if (*outlen + 4096 > cap) {
				cap = cap ? cap * 2 : 16384;
				FZ_ASSERT((*out = realloc(*out, cap)) != NULL);
			}
			n = read(sv[1], *out + *outlen, cap - *outlen);
			if (n > 0)
				*outlen += (size_t)n;
		} while (n > 0);
		if (nclients == 0)
			break;
		/* Each turn takes at least one byte or goes on to the end. */
		FZ_ASSERT(++turns <= size + 8);
	}
	FZ_ASSERT(!fz_later.pending && dbl_quiet());
	close(sv[1]);
	fz_check_stream(data, size, *out, *outlen);
	if (check) {
		fz_check_segment();
		fz_check_restart();
	}
	fz_stop_all();
	*outlen = fz_normalize(*out, *outlen);
}

/* ------------------------------------------------------------------ setup */

static void
fz_cleanup(void)
{
	capstats_close(fz_reader);
	dbl_stop();
	unlink(fz_state);
	rmdir(fz_dir);
}

/*
 * One daemon for every input, whose segment has FZ_FREE entries for
 * sessions: the rest are taken here, so that "no free entry" is within
 * reach.
 */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *prefix = getenv("CAPSTATS_FUZZ_SHM");
	char err[CAPSTATS_ERRBUF_SIZE > 256 ? CAPSTATS_ERRBUF_SIZE : 256];
	uint32_t taken;

	(void)argc;
	(void)argv;
	if (dbl_as_root(err, sizeof(err)) == -1) {
		fprintf(stderr, "fuzz_request: %s\n", err);
		exit(1);
	}
	if (prefix != NULL && *prefix != '\0')
		snprintf(fz_shm, sizeof(fz_shm), "%s-request", prefix);
	else
		snprintf(fz_shm, sizeof(fz_shm), "capstats-fuzz-%ld-request",
		    (long)getpid());
	snprintf(fz_dir, sizeof(fz_dir), "/dev/shm/%s.XXXXXX", fz_shm);
	FZ_ASSERT(mkdtemp(fz_dir) != NULL);
	snprintf(fz_state, sizeof(fz_state), "%s/state", fz_dir);
	/* The loop's epoll, for the client's socket alone. */
	FZ_ASSERT((epfd = epoll_create1(EPOLL_CLOEXEC)) != -1);
	if (dbl_start(fz_shm, FZ_LIMIT, fz_state, err, sizeof(err)) == -1) {
		fprintf(stderr, "fuzz_request: %s\n", err);
		rmdir(fz_dir);
		exit(1);
	}
	atexit(fz_cleanup);
	if ((fz_reader = capstats_open(fz_shm, NULL, err)) == NULL) {
		fprintf(stderr, "fuzz_request: %s\n", err);
		exit(1);
	}
	for (taken = 0; taken < shmw_slots(shm) - FZ_FREE; taken++)
		FZ_ASSERT(shmw_alloc(shm, dbl_mono) != -1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *whole, *pieces;
	size_t wlen, plen;
	bool failed;

	fz_connection(data, size, size > 0 ? size : 1, true, &whole, &wlen);
	failed = fz_failed;
	/*
	 * How the bytes are cut into reads must not change the replies: the
	 * same stream again, in pieces whose size depends on its length.
	 */
	fz_connection(data, size, 1 + size / 8 + size % 3, false, &pieces, &plen);
	FZ_ASSERT(failed == fz_failed);
	FZ_ASSERT(wlen == plen && memcmp(whole, pieces, wlen) == 0);
	free(whole);
	free(pieces);
	return 0;
}
