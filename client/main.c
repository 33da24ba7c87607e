/*
 * main.c: options, and the client's half of the command table (proto.h).
 * One binary, two roles: with -d it becomes the daemon, otherwise it runs
 * one command as a client.
 */
#include <err.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

struct command;
typedef int command_fn(const struct options *, const struct command *,
    int argc, char **argv);
typedef void print_fn(const struct options *, const struct rows *);

/* Who answers a command, and what its first argument is: see proto.h. */
enum cmd_via { VIA_SOCKET, VIA_SEGMENT };
enum cmd_first { FIRST_NONE, FIRST_NAME, FIRST_SESSION };

static const char *const via_words[] = {
	[VIA_SOCKET] = "socket", [VIA_SEGMENT] = "segment"
};
static const char *const first_words[] = {
	[FIRST_NONE] = "none", [FIRST_NAME] = "name",
	[FIRST_SESSION] = "session"
};

struct command {
	const char	*name;
	enum cmd_via	 via;
	enum cmd_first	 first;
	int		 min, max;	/* arguments after the name; -1: any */
	command_fn	*fn;
	print_fn	*print;		/* of the reply; NULL: fn prints */
	const char	*usage, *help;
};

static command_fn cmd_remote, cmd_poll, cmd_watch, cmd_metrics;

/*
 * The client's half of proto.h's command table: a SOCKET command is sent
 * to the daemon and its reply goes to the row's printer; a SEGMENT command
 * is cmd_NAME below.
 */
#define CLIENT_FN_SOCKET(name)		cmd_remote
#define CLIENT_FN_SEGMENT(name)		cmd_##name
#define CLIENT_PRINT_SOCKET(print)	print_##print
#define CLIENT_PRINT_SEGMENT(print)	NULL

static const struct command commands[] = {
#define X(name, via, first, min, max, print, usage, help)		\
	{ #name, VIA_##via, FIRST_##first, min, max, CLIENT_FN_##via(name), \
	    CLIENT_PRINT_##via(print), usage, help },
	CTL_COMMANDS
#undef X
};
#define NCOMMANDS (int)(sizeof(commands) / sizeof(commands[0]))

static void __attribute__((noreturn))
usage(int status)
{
	FILE *f = status ? stderr : stdout;
	int i;

	fprintf(f, "usage: capstats -d [-fD] [-B kbytes] [-g group] "
	    "[-i interface] [-m shmname]\n"
	    "                [-n sessions] [-S statefile] [-s socket]\n"
	    "       capstats [-Hj] [-m shmname] [-s socket] command "
	    "[argument ...]\n"
	    "       capstats [-j] -h\ncommands:\n");
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "       %s\n           %s\n", commands[i].usage,
		    commands[i].help);
	exit(status);
}

/* -jh: the command table for programs (the completion, the tests). */
static void __attribute__((noreturn))
usage_json(void)
{
	const struct command *c;

	for (c = commands; c < commands + NCOMMANDS; c++) {
		fputs(c == commands ? "[{\"command\": " : ",\n {\"command\": ",
		    stdout);
		json_str(stdout, c->name);
		printf(", \"via\": \"%s\", \"first\": \"%s\", \"min\": %d, "
		    "\"max\": ", via_words[c->via], first_words[c->first],
		    c->min);
		if (c->max < 0)
			fputs("null", stdout);
		else
			printf("%d", c->max);
		fputs(", \"usage\": ", stdout);
		json_str(stdout, c->usage);
		fputs(", \"help\": ", stdout);
		json_str(stdout, c->help);
		putchar('}');
	}
	puts("]");
	exit(0);
}

static int
usage_error(const char *fmt, const char *arg)
{
	warnx(fmt, arg);
	return EXIT_USAGE;
}

static const char *
check_name(const char *name)
{
	return ctl_valid_name(name) ? NULL :
	    "invalid session name '%s': use " CTL_NAME_RULE;
}

/* The words of a command, joined by single spaces, as the daemon reads them. */
static int
join(int argc, char **argv, char *buf, size_t len)
{
	size_t used = 0, n;
	int i;

	buf[0] = '\0';
	for (i = 0; i < argc; i++) {
		n = strlen(argv[i]);
		if (!ctl_printable(argv[i], n))
			return usage_error("'%s': only printable ASCII may be "
			    "sent to the daemon", argv[i]);
		if (used + n + 2 > len)
			return usage_error("%s: request too long", argv[0]);
		if (i > 0)
			buf[used++] = ' ';
		memcpy(buf + used, argv[i], n + 1);
		used += n;
	}
	return 0;
}

static int
cmd_remote(const struct options *o, const struct command *c, int argc,
    char **argv)
{
	char req[CTL_REQUEST_MAX];
	struct rows rs;
	int rc;

	if ((rc = join(argc, argv, req, sizeof(req))) != 0)
		return rc;
	if ((rc = req_run(o, req, &rs)) != 0) {
		rows_free(&rs);
		return rc;
	}
	c->print(o, &rs);
	rows_free(&rs);
	return 0;
}

static int
cmd_poll(const struct options *o, const struct command *c, int argc,
    char **argv)
{
	(void)c;
	(void)argc;
	return local_poll(o, argv[1]);
}

static int
cmd_watch(const struct options *o, const struct command *c, int argc,
    char **argv)
{
	double seconds;
	long count = 0;
	const char *bad;
	char *end;

	if (strcmp(argv[2], "frequency") != 0 || argc == 5 ||
	    (argc == 6 && strcmp(argv[4], "count") != 0))
		return usage_error("usage: %s", c->usage);
	errno = 0;
	seconds = strtod(argv[3], &end);
	if (*argv[3] == '\0' || *end != '\0' || errno != 0 ||
	    !(seconds >= 0.001 && seconds <= 86400))
		return usage_error("frequency '%s': give seconds from 0.001 "
		    "to 86400", argv[3]);
	if (argc == 6) {
		count = (long)strtonum(argv[5], 1, LONG_MAX, &bad);
		if (bad != NULL)
			return usage_error("count '%s': give a whole number "
			    "of lines, at least 1", argv[5]);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	return local_watch(o, argv[1], seconds, count);
}

static int
cmd_metrics(const struct options *o, const struct command *c, int argc,
    char **argv)
{
	(void)c;
	(void)argc;
	(void)argv;
	return local_metrics(o);
}

/*
 * Run the command of ARGV: its word, argument count and session name are
 * checked against the table before its handler sees it.
 */
static int
command_run(const struct options *o, int argc, char **argv)
{
	const struct command *c;
	const char *bad;

	for (c = commands; c < commands + NCOMMANDS; c++)
		if (strcmp(argv[0], c->name) == 0)
			break;
	if (c == commands + NCOMMANDS)
		return usage_error("unknown command '%s'; see capstats -h",
		    argv[0]);
	if (argc - 1 < c->min || (c->max >= 0 && argc - 1 > c->max))
		return usage_error("usage: capstats %s", c->usage);
	if (c->first != FIRST_NONE && argc > 1 &&
	    (bad = check_name(argv[1])) != NULL)
		return usage_error(bad, argv[1]);
	return c->fn(o, c, argc, argv);
}

static unsigned
number(const char *s, unsigned min, unsigned max, char flag)
{
	const char *bad;
	long long v;

	v = strtonum(s, min, max, &bad);
	if (bad != NULL)
		errx(EXIT_USAGE, "-%c %s: give a number from %u to %u", flag, s,
		    min, max);
	return (unsigned)v;
}

int
main(int argc, char **argv)
{
	struct options o = {
		.max_sessions = CTL_SESSIONS_DEFAULT,
		.buffer_kb = CTL_BUFFER_DEFAULT_KB,
	};
	bool daemon_only = false, help = false;
	int ch;

	o.sock = getenv(CTL_SOCKET_ENV);
	o.shm = getenv(CTL_SHM_ENV);
	while ((ch = getopt(argc, argv, "B:dDfg:hHi:jm:n:s:S:")) != -1) {
		switch (ch) {
		case 'B': o.buffer_kb = number(optarg, CTL_BUFFER_MIN_KB,
		    CTL_BUFFER_MAX_KB, 'B'); daemon_only = true; break;
		case 'd': o.daemon = true; break;
		case 'D': o.debug = o.foreground = true; daemon_only = true; break;
		case 'f': o.foreground = true; daemon_only = true; break;
		case 'g': o.group = optarg; daemon_only = true; break;
		case 'h': help = true; break;
		case 'H': o.units = 1; break;
		case 'i': o.iface = optarg; daemon_only = true; break;
		case 'j': o.json = true; break;
		case 'm': o.shm = optarg; break;
		case 'n': o.max_sessions = number(optarg, 1, CTL_SESSIONS_MAX,
		    'n'); daemon_only = true; break;
		case 's': o.sock = optarg; break;
		case 'S': o.statefile = optarg; daemon_only = true; break;
		default: usage(EXIT_USAGE);
		}
	}
	argc -= optind;
	argv += optind;
	if (help && o.json)
		usage_json();
	if (help)
		usage(0);
	if (o.sock == NULL || *o.sock == '\0')
		o.sock = CTL_SOCKET_DEFAULT;
	if (o.shm == NULL || *o.shm == '\0')
		o.shm = CAPSTATS_SHM_DEFAULT;

	if (o.daemon) {
		if (argc != 0)
			usage(EXIT_USAGE);
		if (o.iface != NULL && !ctl_valid_iface(o.iface))
			return usage_error("-i %s: invalid interface name",
			    o.iface);
		return daemon_main(&o);
	}
	if (daemon_only) {
		warnx("-B, -D, -f, -g, -i, -n and -S go "
		    "with -d");
		return EXIT_USAGE;
	}
	if (argc == 0)
		usage(EXIT_USAGE);
	return command_run(&o, argc, argv);
}
