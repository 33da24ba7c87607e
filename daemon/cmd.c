/*
 * cmd.c: one handler per control command. A handler parses its words,
 * validates them in a fixed order, acts through sess.c and writes its
 * reply, or, for what waits for a filter to compile, finishes the reply
 * when sess.c calls back; it never touches a socket.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "config.h"
#include "log.h"
#include "reply.h"
#include "sess.h"
#include "state.h"

typedef void cmd_fn(char *args, struct reply *);
static const char *cmd_usage(const char *name);

/* The next word of *p (words are separated by one space), or NULL. */
static char *
next_word(char **p)
{
	char *w = *p, *sp;

	if (w == NULL)
		return NULL;
	if ((sp = strchr(w, ' ')) != NULL) {
		*sp = '\0';
		*p = sp + 1;
	} else
		*p = NULL;
	return w;
}

static int
count_words(const char *s)
{
	int n = 0;

	if (s == NULL)
		return 0;
	for (n = 1; (s = strchr(s, ' ')) != NULL; s++)
		n++;
	return n;
}

static void
row_instance(struct reply *r)
{
	char inst[17];

	snprintf(inst, sizeof(inst), "%016llx", (unsigned long long)cfg.instance);
	rep_str(r, "instance", inst);
}

/* One session as a row: what list and show print. */
static void
row_session(struct reply *r, const struct sess *s, bool full)
{
	rep_row(r);
	rep_str(r, "session", s->name);
	rep_str(r, "interface", s->iface);
	rep_str(r, "state", sess_state_word(s->state));
	rep_str(r, "mode", s->path->name);
	rep_str(r, "mode_reason", s->mode_why);
	rep_u64(r, "packets", s->t.packets);
	rep_u64(r, "bytes", s->t.bytes);
	rep_u64(r, "drops", sess_total_drops(s));
	rep_u64(r, "if_drops", sess_total_if_drops(s));
	if (full) {
		rep_u64(r, "created", s->created_ns);
		rep_u64(r, "modified", s->modified_ns);
		rep_u64(r, "last_packet", s->t.last_packet_ns);
		rep_u64(r, "slot", s->slot);
		rep_u64(r, "session_id", s->session_id);
		row_instance(r);
		if (s->error[0] != '\0')
			rep_str(r, "error", s->error);
	}
	rep_str(r, "filter", s->filter);
}

static struct sess *
find_or_fail(const char *name, struct reply *r)
{
	struct sess *s;

	if (name == NULL || !ctl_valid_name(name)) {
		rep_err(r, CTL_BADNAME, "invalid session name '%s': use "
		    CTL_NAME_RULE, name ? name : "");
		return NULL;
	}
	if ((s = sess_find(name)) == NULL)
		rep_err(r, CTL_NOSESSION, "no session named %s", name);
	return s;
}

static bool
filter_ok(const char *filter, struct reply *r)
{
	if (strlen(filter) > CTL_FILTER_MAX) {
		rep_err(r, CTL_TOOLONG, "filter longer than %d bytes",
		    CTL_FILTER_MAX);
		return false;
	}
	return true;
}

/*
 * The end of a new: the session counts, or the reason it does not. A
 * session the state file does not hold would not survive a restart: it
 * is not kept.
 */
static void
cmd_new_done(uint64_t client, struct sess *s, enum ctl_status st,
    const char *err)
{
	char msg[128];
	struct reply *r;

	if (st == CTL_OK && state_save() == -1) {
		snprintf(msg, sizeof(msg), "cannot save the state file; session "
		    "%s not created", s->name);
		sess_stop(s);
		st = CTL_INTERNAL;
		err = msg;
	}
	if ((r = reply_resume(client)) == NULL)
		return;
	if (st != CTL_OK)
		rep_err(r, st, "%s", err);
	else {
		rep_row(r);
		rep_str(r, "session", s->name);
		rep_str(r, "interface", s->iface);
		rep_str(r, "mode", s->path->name);
		rep_str(r, "mode_reason", s->mode_why);
		rep_u64(r, "slot", s->slot);
		rep_u64(r, "session_id", s->session_id);
		row_instance(r);
		rep_ok(r);
	}
	reply_resumed(client);
}

/* The end of a modify. */
static void
cmd_modify_done(uint64_t client, struct sess *s, enum ctl_status st,
    const char *err)
{
	struct reply *r;

	if (st == CTL_OK && state_save() == -1)
		log_warnx("session %s: the new filter is not saved", s->name);
	if ((r = reply_resume(client)) == NULL)
		return;
	if (st != CTL_OK)
		rep_err(r, st, "%s", err);
	else
		rep_ok(r);
	reply_resumed(client);
}

/* new NAME [interface IFACE] filter EXPR... */
static void
cmd_new(char *args, struct reply *r)
{
	char *name = next_word(&args), *w, *iface = NULL, *mode = NULL, err[512];
	struct sess_waiter sw = { cmd_new_done, 0 };
	enum ctl_status st;
	int want = SESS_AUTO;

	while ((w = next_word(&args)) != NULL && strcmp(w, "filter") != 0) {
		if (strcmp(w, "interface") == 0 && iface == NULL &&
		    (iface = next_word(&args)) != NULL)
			continue;
		if (strcmp(w, "mode") == 0 && mode == NULL &&
		    (mode = next_word(&args)) != NULL &&
		    (want = sess_mode_parse(mode)) != -1)
			continue;
		rep_err(r, CTL_BADREQ, "usage: %s", cmd_usage("new"));
		return;
	}
	if (w == NULL) {
		rep_err(r, CTL_BADREQ, "new: missing 'filter' (an empty "
		    "filter counts every packet)");
		return;
	}
	if (!ctl_valid_name(name)) {
		rep_err(r, CTL_BADNAME, "invalid session name '%s': use "
		    CTL_NAME_RULE, name);
		return;
	}
	if (sess_name_taken(name)) {
		rep_err(r, CTL_EXISTS, "session %s exists", name);
		return;
	}
	if (!filter_ok(args ? args : "", r))
		return;
	if (iface != NULL && !ctl_valid_iface(iface)) {
		rep_err(r, CTL_BADIFACE, "invalid interface name '%s'", iface);
		return;
	}
	sw.client = r->id;
	st = sess_new(name, iface, want, args ? args : "", &sw, err,
	    sizeof(err));
	if (st != CTL_OK) {
		rep_err(r, st, "%s", err);
		return;
	}
	r->later = true;
}

/* modify NAME EXPR... */
static void
cmd_modify(char *args, struct reply *r)
{
	char *name = next_word(&args), err[512];
	const char *filter = args ? args : "";
	struct sess_waiter sw = { cmd_modify_done, r->id };
	enum ctl_status st;
	struct sess *s;

	if ((s = find_or_fail(name, r)) == NULL || !filter_ok(filter, r))
		return;
	if ((st = sess_modify(s, filter, &sw, err, sizeof(err))) != CTL_OK) {
		rep_err(r, st, "%s", err);
		return;
	}
	r->later = true;
}

/* stop NAME */
static void
cmd_stop(char *args, struct reply *r)
{
	struct sess *s;

	if ((s = find_or_fail(args, r)) == NULL)
		return;
	sess_stop(s);
	if (state_save() == -1)
		log_warnx("the stop is not saved");
	rep_ok(r);
}

/* list */
static void
cmd_list(char *args, struct reply *r)
{
	struct sess *s;

	(void)args;
	TAILQ_FOREACH(s, &sessions, entry)
		row_session(r, s, false);
	rep_ok(r);
}

/* show NAME */
static void
cmd_show(char *args, struct reply *r)
{
	struct sess *s;

	if ((s = find_or_fail(args, r)) == NULL)
		return;
	row_session(r, s, true);
	rep_ok(r);
}

/* The daemon's half of the command table: the SOCKET commands are its own. */
#define CMD_FN_SOCKET(name)	cmd_##name
#define CMD_FN_SEGMENT(name)	NULL

static const struct {
	const char	*name;
	int		 min, max;
	cmd_fn		*fn;	/* NULL: the client answers it alone */
	const char	*usage;
} commands[] = {
#define X(name, via, first, min, max, print, usage, help)		\
	{ #name, min, max, CMD_FN_##via(name), usage },
	CTL_COMMANDS
#undef X
};

static const char *
cmd_usage(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(name, commands[i].name) == 0)
			return commands[i].usage;
	return name;
}

void
cmd_exec(char *line, struct reply *r)
{
	char *args = line, *word = next_word(&args);
	size_t i;
	int n;

	if (*word == '\0') {
		rep_err(r, CTL_BADREQ, "empty request");
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (commands[i].fn == NULL ||
		    strcmp(word, commands[i].name) != 0)
			continue;
		n = count_words(args);
		if (n < commands[i].min ||
		    (commands[i].max >= 0 && n > commands[i].max)) {
			rep_err(r, CTL_BADREQ, "usage: %s", commands[i].usage);
			return;
		}
		commands[i].fn(args, r);
		return;
	}
	rep_err(r, CTL_BADREQ, "unknown command '%.64s'", word);
}
