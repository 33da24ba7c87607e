/*
 * fuzz_request.c: libFuzzer target for the control decoder. The input is
 * the byte stream one client sends. ctl.c's own client_read() reads it
 * from a socket pair and frames it, cmd.c's cmd_exec() answers each line,
 * and ctl.c's reply builders write the answers, which are checked line by
 * line.
 *
 * Below cmd.c sits a test double of sess.c, written here: a harness for
 * the parser, not a model of capture. It keeps the rules sess.c keeps (a
 * session limit, segment entries that are not reused at once, one session
 * per name, the kernel path or libpcap's by the mode asked for) and
 * asserts what sess.c takes on trust from cmd.c.
 */
#include <sys/socket.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

#include "../../daemon/proto.c"
#include "../../daemon/log.c"

/*
 * A new or a modify ends later, from the loop: the double ends it as soon
 * as cmd_exec() returns, and hands cmd.c the reply still being built.
 */
#include "daemon.h"

static struct reply *fz_later;
static struct reply *fz_resume(uint64_t);
static void fz_resumed(uint64_t);
#define ctl_resume fz_resume
#define ctl_resumed fz_resumed
#include "../../daemon/cmd.c"
#undef ctl_resume
#undef ctl_resumed

/* ctl.c hands each line to cmd_exec(): the harness steps in to check each reply on its own. */
static void fz_exec(char *line, struct reply *r);
#define cmd_exec fz_exec
#include "../../daemon/ctl.c"
#undef cmd_exec

/* ------------------------------------------------ the session layer double */

#define FZ_LIMIT	4	/* -n: small, so that "session limit reached" is within reach */
#define FZ_SLOTS	6	/* segment entries; no time passes, so a stopped one never cools down */

struct config cfg = {
	.default_iface = "fz0",
	.max_sessions = FZ_LIMIT,
	.instance = 0x0123456789abcdefull,
};
struct sess_list sessions = TAILQ_HEAD_INITIALIZER(sessions);

static const struct path_ops fz_pcap = { .name = "pcap" };
static const struct path_ops fz_kernel = { .name = "kernel" };
static unsigned fz_nsess, fz_slots_used;
static uint64_t fz_next_id, fz_now;

/* ctl.c's socket code links against the event loop; the harness runs none. */
int
ev_add(struct evsrc *src, uint32_t events)
{
	(void)src;
	(void)events;
	return 0;
}

int
ev_mod(struct evsrc *src, uint32_t events)
{
	(void)src;
	(void)events;
	return 0;
}

void
ev_del(struct evsrc *src)
{
	(void)src;
}

void
loop_free_later(void *p)
{
	free(p);
}

/* A clock that only moves when the double says so keeps replies reproducible. */
uint64_t
now_mono(void)
{
	return fz_now;
}

uint64_t
now_real(void)
{
	return fz_now;
}

static FZ_NOCOV bool
fz_in_table(const struct sess *s)
{
	const struct sess *t;

	TAILQ_FOREACH(t, &sessions, entry)
		if (t == s)
			return true;
	return false;
}

/* The double's stand-in for a filter libpcap refuses: unbalanced parentheses. */
static bool
fz_balanced(const char *filter)
{
	int depth = 0;

	for (; *filter != '\0' && depth >= 0; filter++)
		depth += (*filter == '(') - (*filter == ')');
	return depth == 0;
}

/* Counters near the top of their range, so every digit of a reply is used. */
static void
fz_counts(struct sess *s)
{
	s->packets = s->session_id * 0x9e3779b97f4a7c15ull;
	s->bytes = ~s->packets;
	s->last_packet_ns = fz_now;
	s->drops = s->session_id;
	s->if_drops = s->session_id << 32;
	s->drops_base = UINT64_MAX / 2;
	s->if_drops_base = s->session_id;
}

/* The double's stand-in for a filter the kernel path cannot translate. */
static bool
fz_kernel_counts(const char *filter)
{
	return strchr(filter, '[') == NULL;
}

/* What the kernel path says when it refuses FILTER. */
static void
fz_refusal(const char *filter, char *err, size_t errlen)
{
	snprintf(err, errlen, "filter '%.100s': the kernel path cannot count "
	    "a byte offset", filter);
}

/* Move S to libpcap after the kernel path refused its filter. */
static void
fz_fall_back(struct sess *s, const char *why)
{
	s->path = &fz_pcap;
	s->mode = CAPSTATS_MODE_PCAP;
	s->flags |= CAPSTATS_F_MODE_FALLBACK;
	/* The reason may carry a translator's message: any byte. */
	snprintf(s->mode_why, sizeof(s->mode_why), "kernel path refused:\t%s\n",
	    why);
}

/*
 * Which path counts FILTER for S, with sess.c's flags and reasons; CTL_OK,
 * or why not.
 */
static enum ctl_status
fz_open(struct sess *s, const char *filter, char *err, size_t errlen)
{
	s->flags = s->want == SESS_AUTO ? 0 : CAPSTATS_F_MODE_ASKED;
	s->path = &fz_pcap;
	s->mode = CAPSTATS_MODE_PCAP;
	snprintf(s->mode_why, sizeof(s->mode_why), "asked for");
	if (s->want == SESS_PCAP)
		return CTL_OK;
	if (fz_kernel_counts(filter)) {
		s->path = &fz_kernel;
		s->mode = CAPSTATS_MODE_KERNEL;
		snprintf(s->mode_why, sizeof(s->mode_why), "%s",
		    s->want == SESS_KERNEL ? "asked for" : "the default");
		return CTL_OK;
	}
	fz_refusal(filter, err, errlen);
	if (s->want == SESS_KERNEL)
		return CTL_BADFILTER;
	fz_fall_back(s, err);
	return CTL_OK;
}

int
sess_mode_parse(const char *w)
{
	static const char *const words[] = {
		[SESS_AUTO] = "auto",
		[SESS_PCAP] = "pcap",
		[SESS_KERNEL] = "kernel",
	};
	int m;

	for (m = 0; m < (int)(sizeof(words) / sizeof(words[0])); m++)
		if (strcmp(w, words[m]) == 0)
			return m;
	return -1;
}

struct sess *
sess_find(const char *name)
{
	struct sess *s;

	TAILQ_FOREACH(s, &sessions, entry)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

const char *
sess_state_word(enum capstats_state st)
{
	FZ_ASSERT(st <= CAPSTATS_STOPPED);
	return capstats_state_name(st);
}

uint64_t
sess_total_drops(const struct sess *s)
{
	return s->drops_base + s->drops;
}

uint64_t
sess_total_if_drops(const struct sess *s)
{
	return s->if_drops_base + s->if_drops;
}

bool
sess_name_taken(const char *name)
{
	return sess_find(name) != NULL;
}

/* The operation cmd.c waits for, ended by fz_finish(). */
static struct {
	struct sess_waiter	 w;
	bool			 is_new;
	char			 name[CAPSTATS_NAME_MAX + 1];
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	bool			 has_iface;
	enum sess_mode		 want;
	struct sess		*s;
	char			 filter[CTL_FILTER_MAX + 1];
	bool			 pending;
} fz_op;

static enum ctl_status fz_new(const char *, const char *, enum sess_mode,
    const char *, char *, size_t);
static enum ctl_status fz_modify(struct sess *, const char *, char *, size_t);

enum ctl_status
sess_new(const char *name, const char *iface, enum sess_mode want,
    const char *filter, const struct sess_waiter *w, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	FZ_ASSERT(!fz_op.pending && w->done != NULL);
	FZ_ASSERT(strlen(filter) <= CTL_FILTER_MAX);
	fz_op.w = *w;
	fz_op.is_new = true;
	strlcpy(fz_op.name, name, sizeof(fz_op.name));
	fz_op.has_iface = iface != NULL;
	if (iface != NULL)
		strlcpy(fz_op.iface, iface, sizeof(fz_op.iface));
	fz_op.want = want;
	strlcpy(fz_op.filter, filter, sizeof(fz_op.filter));
	fz_op.pending = true;
	return CTL_OK;
}

enum ctl_status
sess_modify(struct sess *s, const char *filter, const struct sess_waiter *w,
    char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	FZ_ASSERT(!fz_op.pending && w->done != NULL);
	FZ_ASSERT(fz_in_table(s) && strlen(filter) <= CTL_FILTER_MAX);
	fz_op.w = *w;
	fz_op.is_new = false;
	fz_op.s = s;
	strlcpy(fz_op.filter, filter, sizeof(fz_op.filter));
	fz_op.pending = true;
	return CTL_OK;
}

static struct reply *
fz_resume(uint64_t client)
{
	FZ_ASSERT(fz_later != NULL && client == fz_later->client);
	return fz_later;
}

static void
fz_resumed(uint64_t client)
{
	FZ_ASSERT(fz_later != NULL && client == fz_later->client);
	fz_later = NULL;
}

/* End the operation under way, as sess.c does once the filter compiled. */
static void
fz_finish(struct reply *r)
{
	struct sess_waiter w = fz_op.w;
	enum ctl_status st;
	char err[512] = "";
	struct sess *s;

	FZ_ASSERT(fz_op.pending && r->later);
	fz_op.pending = false;
	fz_later = r;
	if (fz_op.is_new) {
		st = fz_new(fz_op.name, fz_op.has_iface ? fz_op.iface : NULL,
		    fz_op.want, fz_op.filter, err, sizeof(err));
		s = st == CTL_OK ? sess_find(fz_op.name) : NULL;
	} else {
		st = fz_modify(fz_op.s, fz_op.filter, err, sizeof(err));
		s = fz_op.s;
	}
	w.done(w.client, st == CTL_OK ? s : NULL, st, err);
	FZ_ASSERT(fz_later == NULL);
	r->later = false;
}

static enum ctl_status
fz_new(const char *name, const char *iface, enum sess_mode want,
    const char *filter, char *err, size_t errlen)
{
	enum ctl_status st;
	struct sess *s;

	/* What sess.c relies on cmd.c and ctl.c for. */
	FZ_ASSERT(ctl_valid_name(name) && sess_find(name) == NULL);
	FZ_ASSERT(iface == NULL || ctl_valid_iface(iface));
	FZ_ASSERT(want == SESS_AUTO || want == SESS_PCAP || want == SESS_KERNEL);
	FZ_ASSERT(ctl_valid_filter(filter));
	if (fz_nsess >= cfg.max_sessions) {
		snprintf(err, errlen, "session limit reached: %u sessions "
		    "(raise it with -n)", cfg.max_sessions);
		return CTL_FULL;
	}
	if (iface == NULL)
		iface = cfg.default_iface;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->filter = strdup(filter)) == NULL) {
		free(s);
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	strlcpy(s->name, name, sizeof(s->name));
	strlcpy(s->iface, iface, sizeof(s->iface));
	s->want = want;
	if (fz_slots_used >= FZ_SLOTS) {
		snprintf(err, errlen, "no free entry in the segment: stopped "
		    "sessions' entries are reused 2 s after stop");
		st = CTL_FULL;
	} else if (strncmp(iface, "nosuch", 6) == 0) {
		snprintf(err, errlen, "%s: no such interface", iface);
		st = CTL_BADIFACE;
	} else if (!fz_balanced(filter)) {
		snprintf(err, errlen, "filter '%.200s': syntax error", filter);
		st = CTL_BADFILTER;
	} else
		st = fz_open(s, filter, err, errlen);
	if (st != CTL_OK) {
		free(s->filter);
		free(s);
		return st;
	}
	s->created_ns = s->modified_ns = ++fz_now;
	s->slot = fz_slots_used++;
	s->session_id = ++fz_next_id;
	s->state = CAPSTATS_RUNNING;
	fz_counts(s);
	/*
	 * A session whose capture broke after it started, as sess_fail()
	 * leaves it: libpcap's messages may carry any byte.
	 */
	if (strncmp(iface, "flaky", 5) == 0) {
		s->state = CAPSTATS_ERROR;
		snprintf(s->error, sizeof(s->error), "%s: capture socket:\t"
		    "Network is down\r\n\x7f\x1b[0m", s->iface);
	}
	TAILQ_INSERT_TAIL(&sessions, s, entry);
	fz_nsess++;
	return CTL_OK;
}

static enum ctl_status
fz_modify(struct sess *s, const char *filter, char *err, size_t errlen)
{
	bool refused;
	char *copy;

	FZ_ASSERT(fz_in_table(s));
	FZ_ASSERT(ctl_valid_filter(filter));
	if (!fz_balanced(filter)) {
		snprintf(err, errlen, "filter '%.200s': syntax error", filter);
		return CTL_BADFILTER;
	}
	/* A filter the kernel path refuses moves the session to libpcap, if its mode allows. */
	if ((refused = s->path == &fz_kernel && !fz_kernel_counts(filter))) {
		fz_refusal(filter, err, errlen);
		if (s->want == SESS_KERNEL)
			return CTL_BADFILTER;
	}
	if ((copy = strdup(filter)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if (refused)
		fz_fall_back(s, err);
	free(s->filter);
	s->filter = copy;
	s->modified_ns = ++fz_now;
	return CTL_OK;
}

void
sess_stop(struct sess *s)
{
	FZ_ASSERT(fz_in_table(s));
	TAILQ_REMOVE(&sessions, s, entry);
	fz_nsess--;
	free(s->filter);
	free(s);
}

/* The table after every request: what sess.c guarantees its readers. */
static FZ_NOCOV void
fz_check_table(void)
{
	const struct sess *s, *t;
	unsigned n = 0;

	TAILQ_FOREACH(s, &sessions, entry) {
		n++;
		FZ_ASSERT(ctl_valid_name(s->name) && ctl_valid_iface(s->iface));
		FZ_ASSERT(ctl_valid_filter(s->filter));
		FZ_ASSERT(s->slot < FZ_SLOTS && s->session_id != 0);
		for (t = TAILQ_NEXT(s, entry); t != NULL; t = TAILQ_NEXT(t, entry)) {
			FZ_ASSERT(strcmp(s->name, t->name) != 0);
			FZ_ASSERT(s->slot != t->slot);
			FZ_ASSERT(s->session_id != t->session_id);
		}
	}
	FZ_ASSERT(n == fz_nsess && n <= cfg.max_sessions);
}

static void
fz_reset(void)
{
	struct sess *s;

	while ((s = TAILQ_FIRST(&sessions)) != NULL)
		sess_stop(s);
	fz_slots_used = 0;
	fz_next_id = 0;
	fz_now = 1700000000ull * 1000000000u;
}

/* ------------------------------------------------------------ reply checks */

enum fz_kind { FZ_ROW, FZ_OK, FZ_ERROR };

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

/* One reply line without its LF: a row, "ok" or an error; nothing else. */
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

/* Is VERB a command of proto.h's table that the daemon answers? */
static FZ_NOCOV bool
fz_answered(const char *verb)
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
fz_agrees(char *req, const struct fz_block *b, unsigned n0)
{
	char *verb = req, *name = strchr(req, ' '), *rest = NULL;
	const struct sess *s;

	if (name != NULL) {
		*name++ = '\0';
		if ((rest = strchr(name, ' ')) != NULL)
			*rest++ = '\0';
	}
	if (!b->ok) {
		FZ_ASSERT(fz_nsess == n0);
		if (strcmp(b->code, "exists") == 0)
			FZ_ASSERT(name != NULL && sess_find(name) != NULL);
		if (strcmp(b->code, "nosession") == 0)
			FZ_ASSERT(name != NULL && sess_find(name) == NULL);
		return;
	}
	FZ_ASSERT(fz_answered(verb));
	if (strcmp(verb, "list") == 0) {
		FZ_ASSERT(b->rows == fz_nsess && fz_nsess == n0);
		return;
	}
	s = name != NULL ? sess_find(name) : NULL;
	if (strcmp(verb, "new") == 0) {
		FZ_ASSERT(fz_nsess == n0 + 1 && s != NULL && b->rows == 1);
		FZ_ASSERT(fz_field_is(b->row, b->rowlen, "session", name));
	} else if (strcmp(verb, "show") == 0) {
		FZ_ASSERT(fz_nsess == n0 && s != NULL && b->rows == 1);
		FZ_ASSERT(fz_field_is(b->row, b->rowlen, "session", name));
		FZ_ASSERT(fz_field_is(b->row, b->rowlen, "state",
		    sess_state_word(s->state)));
	} else if (strcmp(verb, "modify") == 0) {
		FZ_ASSERT(fz_nsess == n0 && s != NULL && b->rows == 0);
		FZ_ASSERT(strcmp(s->filter, rest != NULL ? rest : "") == 0);
	} else if (strcmp(verb, "stop") == 0) {
		FZ_ASSERT(name != NULL && fz_nsess == n0 - 1 && s == NULL &&
		    b->rows == 0);
	}
}

static void
fz_exec(char *line, struct reply *r)
{
	char req[CTL_REQUEST_MAX];
	size_t before = r->len, len = strlen(line);
	unsigned n0 = fz_nsess;
	struct fz_block b;

	/* What client_read() promises cmd_exec(). */
	FZ_ASSERT(len < CTL_REQUEST_MAX && ctl_printable(line, len));
	memcpy(req, line, len + 1);
	r->client = 1;
	cmd_exec(line, r);
	if (r->later)
		fz_finish(r);
	FZ_ASSERT(!fz_op.pending);
	fz_check_table();
	/* The daemon drops a client whose reply could not be built. */
	if (r->failed)
		return;
	fz_block(r->buf + before, r->len - before, &b);
	fz_agrees(req, &b, n0);
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

/* The whole output: complete lines, and as many replies as requests. */
static FZ_NOCOV void
fz_check_stream(const uint8_t *data, size_t size, const struct reply *out)
{
	const char *p, *end, *lf;
	size_t replies = 0;
	char code[16];

	if (out->len == 0) {
		FZ_ASSERT(fz_requests(data, size) == 0);
		return;
	}
	p = out->buf;
	end = out->buf + out->len;
	FZ_ASSERT(end[-1] == '\n');
	for (; p < end; p = lf + 1) {
		lf = memchr(p, '\n', (size_t)(end - p));
		if (fz_line(p, (size_t)(lf - p), code) != FZ_ROW)
			replies++;
		else
			FZ_ASSERT(lf + 1 < end);
	}
	FZ_ASSERT(replies == fz_requests(data, size));
}

/*
 * A peer that reads every reply as soon as it is queued, so that ctl.c's
 * reply budget never holds the stream up: what was queued moves to ALL.
 */
static void
fz_take(struct client *c, struct reply *all)
{
	size_t n = c->out.len - c->outoff;
	char *p;

	if (n == 0)
		return;
	FZ_ASSERT((p = realloc(all->buf, all->len + n)) != NULL);
	memcpy(p + all->len, c->out.buf + c->outoff, n);
	all->buf = p;
	all->len += n;
	c->out.len = c->outoff = 0;
}

/*
 * One client's connection: DATA goes into a socket pair in writes of CHUNK
 * bytes, and client_read() takes what is there after each write, as the
 * daemon does when epoll says the socket is readable. The reply is left in
 * *OUT for the caller to free.
 */
static void
fz_connection(const uint8_t *data, size_t size, size_t chunk,
    struct reply *out)
{
	struct client *c;
	size_t off = 0, turns = 0;
	bool shut = false;
	ssize_t n;
	int sv[2];

	memset(out, 0, sizeof(*out));
	fz_reset();
	FZ_ASSERT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv) == 0);
	FZ_ASSERT((c = calloc(1, sizeof(*c))) != NULL);
	c->ev.fd = sv[0];
	while (!c->closing && !c->out.failed) {
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
		client_read(c);
		fz_take(c, out);
		/* Each turn takes at least one byte or sees the end. */
		FZ_ASSERT(++turns <= size + 2);
	}
	out->failed = c->out.failed;
	close(sv[0]);
	close(sv[1]);
	free(c->out.buf);
	free(c);
	fz_reset();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reply whole, pieces;

	fz_connection(data, size, size > 0 ? size : 1, &whole);
	if (!whole.failed)
		fz_check_stream(data, size, &whole);
	/*
	 * How the bytes are cut into reads must not change the reply: the
	 * same stream again, in pieces whose size depends on its length.
	 */
	fz_connection(data, size, 1 + size / 8 + size % 3, &pieces);
	FZ_ASSERT(whole.failed == pieces.failed);
	FZ_ASSERT(whole.failed || whole.len == pieces.len);
	FZ_ASSERT(whole.failed || whole.len == 0 ||
	    memcmp(whole.buf, pieces.buf, whole.len) == 0);
	free(whole.buf);
	free(pieces.buf);
	return 0;
}
