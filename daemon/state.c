/*
 * state.c: the state file, so sessions survive a restart. It holds each
 * session's name, interface and filter, one per line, and is replaced
 * atomically (write, fsync, rename) at every change. A damaged file is
 * kept aside, never overwritten, and what can be read of it is restored.
 * A session over the session limit at start is held: its line is written
 * back after the sessions that run, for a start with a larger -n.
 *
 *	# capstats state 1
 *	session TAB NAME TAB IFACE TAB MODE TAB FILTER LF
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "sess.h"
#include "state.h"

#define STATE_HEADER	"# capstats state 1"
#define STATE_SESSION	"session\t%s\t%s\t%s\t%s"	/* name, iface, mode, filter */
#define STATE_BUFFER	(256 * 1024)
#define STATE_LINE_MAX	(CTL_FILTER_MAX + CAPSTATS_NAME_MAX + CAPSTATS_IFACE_MAX + 32)

static char path[PATH_MAX];
static char **held;		/* lines of sessions over the limit at start */
static size_t nheld;

static void
held_free(void)
{
	while (nheld > 0)
		free(held[--nheld]);
	free(held);
	held = NULL;
}

void
state_init(const char *p)
{
	strlcpy(path, p, sizeof(path));
	held_free();
}

/* Hold the session of fields F: name, iface, mode, filter; -1: no memory. */
static int
held_add(char *const f[4])
{
	char **more, *copy;

	if (asprintf(&copy, STATE_SESSION, f[0], f[1], f[2], f[3]) == -1)
		return -1;
	if ((more = reallocarray(held, nheld + 1, sizeof(*held))) == NULL) {
		free(copy);
		return -1;
	}
	held = more;
	held[nheld++] = copy;
	return 0;
}

/* The name of held line I, in NAME. */
static void
held_name(size_t i, char *name, size_t namelen)
{
	const char *p = held[i] + sizeof("session");

	snprintf(name, namelen, "%.*s", (int)strcspn(p, "\t"), p);
}

/* Whether a session in the table took held line I's name (put in NAME). */
static bool
held_replaced(size_t i, char *name, size_t namelen)
{
	held_name(i, name, namelen);
	return sess_find(name) != NULL;
}

static bool
held_has(const char *want)
{
	char name[CAPSTATS_NAME_MAX + 1];
	size_t i;

	for (i = 0; i < nheld; i++) {
		held_name(i, name, sizeof(name));
		if (strcmp(name, want) == 0)
			return true;
	}
	return false;
}

/*
 * Write the held lines to F, but for one whose name a session in the table
 * has taken since: that session replaces it. One still starting does not
 * yet: if its filter fails, the held line stays.
 */
static void
held_write(FILE *f)
{
	char name[CAPSTATS_NAME_MAX + 1];
	size_t i;

	for (i = 0; i < nheld; i++)
		if (!held_replaced(i, name, sizeof(name)))
			fprintf(f, "%s\n", held[i]);
}

/* Once the file is saved without them, forget the replaced held lines. */
static void
held_prune(void)
{
	char name[CAPSTATS_NAME_MAX + 1];
	size_t i, k = 0;

	for (i = 0; i < nheld; i++) {
		if (held_replaced(i, name, sizeof(name))) {
			log_warnx("state file %s: held session %s is replaced "
			    "by the new session of that name", path, name);
			free(held[i]);
		} else
			held[k++] = held[i];
	}
	nheld = k;
}

static int
fsync_dir(const char *file)
{
	char copy[PATH_MAX];
	int fd, rc;

	strlcpy(copy, file, sizeof(copy));
	if ((fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

int
state_save(void)
{
	static char buf[STATE_BUFFER];
	char tmp[PATH_MAX + 8];
	struct sess *s;
	FILE *f;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "w")) == NULL) {
		log_warn("state file %s", tmp);
		if (fd != -1)
			close(fd);
		return -1;
	}
	/* One write for a table that fits (4096 short filters do), not one a page. */
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	fprintf(f, "%s\n", STATE_HEADER);
	TAILQ_FOREACH(s, &sessions, entry)
		fprintf(f, STATE_SESSION "\n", s->name, s->iface,
		    sess_mode_word(s->want), s->filter);
	held_write(f);
	if (fflush(f) == EOF || fsync(fileno(f)) == -1) {
		log_warn("state file %s", tmp);
		fclose(f);
		unlink(tmp);
		return -1;
	}
	fclose(f);
	if (rename(tmp, path) == -1) {
		log_warn("state file %s", path);
		unlink(tmp);
		return -1;
	}
	if (fsync_dir(path) == -1)
		log_warn("state file directory of %s", path);
	held_prune();
	return 0;
}

/*
 * Copy the damaged file, open as FD, aside so that saving cannot destroy
 * it. A FIFO or a device, which a copy would stall on or never finish, is
 * moved aside instead; a directory stays, with an empty note beside it.
 */
static void
state_keep_bad(int fd)
{
	char bad[PATH_MAX + 32], buf[4096];
	struct stat st;
	ssize_t n;
	int out;

	snprintf(bad, sizeof(bad), "%s.bad.%lld", path, (long long)time(NULL));
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		if (rename(path, bad) == -1)
			log_warn("moving %s aside", path);
		else
			log_warnx("state file %s: moved aside as %s", path, bad);
		return;
	}
	if ((out = open(bad, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		log_warn("keeping a copy of %s", path);
		return;
	}
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			log_warn("%s", bad);
			goto done;
		}
	log_warnx("state file %s: damaged; a copy is kept as %s", path, bad);
done:
	close(out);
}

/* state_line()'s answer for a session over the limit, which it held. */
static const char over_limit[] = "over the session limit";

/* Restore one line; a reason when it cannot be. */
static const char *
state_line(char *line)
{
	char *f[5], *p = line, err[512];
	int n, want;

	for (n = 0; n < 5 && p != NULL; n++)
		f[n] = n < 4 ? strsep(&p, "\t") : p;
	if (n != 5 || p == NULL || strcmp(f[0], "session") != 0)
		return "not a session line";
	if (!ctl_valid_name(f[1]))
		return "bad session name";
	if (!ctl_valid_iface(f[2]))
		return "bad interface name";
	if ((want = sess_mode_parse(f[3])) == -1)
		return "bad counting path";
	if (!ctl_valid_filter(f[4]))
		return "bad filter text";
	if (sess_name_taken(f[1]) || held_has(f[1]))
		return "session named twice";
	switch (sess_restore(f[1], f[2], want, f[4], err, sizeof(err))) {
	case CTL_OK:
		return NULL;
	case CTL_FULL:
		if (held_add(&f[1]) == -1)
			return "over the session limit, and out of memory";
		log_warnx("state file %s: session %s: over the session limit "
		    "(%u); held in the file, not counted", path, f[1],
		    cfg.max_sessions);
		return over_limit;
	default:
		log_warnx("state file %s: session %s: %s", path, f[1], err);
		return "could not be restored";
	}
}

/*
 * Whether the file open as FD may be believed: root's, and writable by no
 * one else. Another user who could write it could make the daemon open
 * captures of their choosing.
 */
static const char *
state_untrusted(int fd)
{
	static char why[96];
	struct stat st;

	if (fstat(fd, &st) == -1)
		return "cannot be checked";
	if (!S_ISREG(st.st_mode))
		return "not a regular file";
	if (st.st_uid != 0) {
		snprintf(why, sizeof(why), "owned by uid %u, not root",
		    (unsigned)st.st_uid);
		return why;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return "writable by group or others";
	return NULL;
}

/* Why line LINE of LEN bytes (its LF taken off) cannot be restored, or NULL. */
static const char *
state_check_line(char *line, size_t len, bool had_lf)
{
	if (!had_lf)
		return "truncated: no end of line";
	if (memchr(line, '\0', len) != NULL)
		return "has a NUL byte";
	if (len > STATE_LINE_MAX)
		return "too long";
	return state_line(line);
}

/*
 * Restore each good line of F, hold those over the limit; count the good
 * and the bad; the lines read.
 */
static unsigned
state_read(FILE *f, unsigned *good, unsigned *bad)
{
	unsigned lineno = 0;
	const char *why;
	char *line = NULL;
	size_t cap = 0, len;
	ssize_t n;
	bool lf;

	while ((n = getline(&line, &cap, f)) != -1) {
		lineno++;
		len = (size_t)n;
		if ((lf = len > 0 && line[len - 1] == '\n'))
			line[--len] = '\0';
		if (lf && lineno == 1 && strcmp(line, STATE_HEADER) == 0)
			continue;
		if (lf && len == 0)
			continue;
		if (lineno == 1) {
			log_warnx("state file %s: no header", path);
			(*bad)++;
		}
		if ((why = state_check_line(line, len, lf)) == over_limit)
			continue;
		if (why != NULL) {
			log_warnx("state file %s line %u: %s; not restored",
			    path, lineno, why);
			(*bad)++;
		} else
			(*good)++;
	}
	free(line);
	return lineno;
}

void
state_restore(void)
{
	unsigned bad = 0, good = 0, lines;
	const char *why;
	FILE *f;
	int fd;

	/* Not blocking: a FIFO put there must not stall the start. */
	if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)) == -1 ||
	    (f = fdopen(fd, "r")) == NULL) {
		if (errno != ENOENT)
			log_warn("state file %s", path);
		if (fd != -1)
			close(fd);
		return;
	}
	if ((why = state_untrusted(fd)) != NULL) {
		log_warnx("state file %s: %s; nothing restored from it", path,
		    why);
		state_keep_bad(fd);
		fclose(f);
		state_save();
		return;
	}
	lines = state_read(f, &good, &bad);
	if (nheld > 0)
		log_warnx("state file %s: %zu sessions held until a start with "
		    "a larger -n", path, nheld);
	if (lines > 0)
		log_info("state file %s: %u sessions restored, %u lines not",
		    path, good, bad);
	if (bad > 0)
		state_keep_bad(fd);
	fclose(f);
	state_save();
}
