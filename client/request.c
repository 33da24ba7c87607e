/*
 * request.c: one request, one reply over the control socket. Turns a
 * refused connection into advice and a daemon's error into its exit status.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

#define REPLY_TIMEOUT_S	30

static int
connect_daemon(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = REPLY_TIMEOUT_S };
	int fd;

	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		warnx("socket path too long: %s", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		warn("socket");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	if (errno == ENOENT || errno == ECONNREFUSED)
		warnx("daemon not running (no one listens "
		    "on %s)", path);
	else if (errno == EACCES || errno == EPERM)
		warnx("permission denied on %s: not root "
		    "and not in the daemon's group", path);
	else
		warn("%s", path);
	close(fd);
	return -1;
}

/* Split a row line into fields, in place. */
static void
row_parse(struct row *r, char *line)
{
	char *f, *eq;

	r->n = 0;
	strsep(&line, "\t");	/* the tag */
	while ((f = strsep(&line, "\t")) != NULL && r->n < ROW_FIELDS_MAX) {
		if ((eq = strchr(f, '=')) == NULL)
			continue;
		*eq = '\0';
		r->key[r->n] = f;
		r->val[r->n++] = eq + 1;
	}
}

/* An error line: print its message; the exit status it means. */
static int
reply_error(char *line)
{
	char *code, *msg;

	strsep(&line, "\t");
	code = strsep(&line, "\t");
	msg = line != NULL ? line : "";
	warnx("%s", msg[0] ? msg : code ? code : "error");
	return code != NULL && ctl_status_parse(code) == CTL_BADREQ ?
	    EXIT_USAGE : EXIT_REFUSED;
}

/* Read the reply's lines into one buffer; the index of the last line. */
static int
read_reply(FILE *f, struct rows *out, int *status)
{
	char *line = NULL, *p;
	size_t cap = 0, used = 0, bufcap = 0, i, nlines = 0;
	ssize_t len;
	int greeted = 0;

	*status = EXIT_REFUSED;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (!greeted) {
			greeted = 1;
			if (strncmp(line, "hello", 5) == 0)
				continue;
		}
		if (strncmp(line, "error", 5) == 0) {
			*status = reply_error(line);
			break;
		}
		if (strcmp(line, "ok") == 0) {
			*status = 0;
			break;
		}
		if (used + (size_t)len + 1 > bufcap) {
			bufcap = (used + (size_t)len + 1) * 2;
			if ((p = realloc(out->buf, bufcap)) == NULL)
				goto nomem;
			out->buf = p;
		}
		memcpy(out->buf + used, line, (size_t)len + 1);
		used += (size_t)len + 1;
		nlines++;
	}
	if (len <= 0 && *status != 0 && ferror(f))
		warnx("reading the reply: %s",
		    errno == EAGAIN ? "timed out" : strerror(errno));
	else if (len <= 0 && *status != 0)
		warnx("the daemon closed the connection");
	free(line);
	if (*status != 0)
		return -1;
	if ((out->v = calloc(nlines + 1, sizeof(*out->v))) == NULL)
		goto nomem;
	for (i = 0, p = out->buf; i < nlines; i++) {
		char *line_end = p + strlen(p) + 1;

		row_parse(&out->v[i], p);
		p = line_end;
	}
	out->n = nlines;
	return 0;
nomem:
	free(line);
	warnx("out of memory");
	return -1;
}

int
req_run(const struct options *o, const char *request, struct rows *out)
{
	size_t len = strlen(request);
	int fd, status;
	FILE *f;

	memset(out, 0, sizeof(*out));
	if ((fd = connect_daemon(o->sock)) == -1)
		return EXIT_REFUSED;
	if (send(fd, request, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		/* A refused peer is told why before the daemon hangs up. */
		if ((f = fdopen(fd, "r")) != NULL) {
			read_reply(f, out, &status);
			fclose(f);
			return status ? status : EXIT_REFUSED;
		}
		close(fd);
		warnx("sending the request: %s",
		    strerror(errno));
		return EXIT_REFUSED;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		close(fd);
		warnx("%s", strerror(errno));
		return EXIT_REFUSED;
	}
	read_reply(f, out, &status);
	fclose(f);
	return status;
}

void
rows_free(struct rows *r)
{
	free(r->v);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

const char *
row_get(const struct row *r, const char *key)
{
	int i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->key[i], key) == 0)
			return r->val[i];
	return NULL;
}

uint64_t
row_u64(const struct row *r, const char *key)
{
	const char *v = row_get(r, key);

	return v != NULL ? strtoull(v, NULL, 10) : 0;
}
