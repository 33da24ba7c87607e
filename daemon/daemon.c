/*
 * daemon.c: start-up, detaching, the pidfile, the order in which the
 * modules start and stop, and the run of the loop between them.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libutil.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile.h"
#include "config.h"
#include "ctl.h"
#include "daemon.h"
#include "log.h"
#include "loop.h"
#include "pcaplib.h"
#include "sess.h"
#include "state.h"

static int
resolve_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group *gr;
	const char *bad;
	long long v;

	if ((gr = getgrnam(name)) != NULL) {
		*gid = gr->gr_gid;
		return 0;
	}
	v = strtonum(name, 0, UINT_MAX - 1, &bad);
	if (bad == NULL) {
		*gid = (gid_t)v;
		return 0;
	}
	snprintf(err, errlen, "-g %s: no such group", name);
	return -1;
}

/*
 * Detach, but keep the caller's stderr until start-up is done, so every
 * start-up error reaches the person who ran `capstats -d`. The parent
 * relays what the child writes; a NUL byte from the child means it is up.
 */
static void
detach(void)
{
	int p[2], status;
	char buf[512], *nul;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], buf, sizeof(buf))) > 0) {
			nul = memchr(buf, '\0', (size_t)n);
			if (write(STDERR_FILENO, buf, nul ? (size_t)(nul - buf) :
			    (size_t)n) == -1 || nul != NULL)
				_exit(nul != NULL ? 0 : 1);
		}
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status) ? WEXITSTATUS(status) : 1);
		_exit(1);
	}
	close(p[0]);
	if (setsid() == -1)
		fatal("setsid");
	if (dup2(p[1], STDERR_FILENO) == -1)
		fatal("dup2");
	close(p[1]);
}

static void
detached(void)
{
	int fd;

	log_to_syslog();
	if (write(STDERR_FILENO, "", 1) == -1)
		log_warn("start-up pipe");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (chdir("/") == -1)
		log_warn("chdir /");
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * The segment's name, less its optional leading '/', also names the
 * pidfile and the state file: it must be one path component, or they
 * would land outside their directories.
 */
static bool
shm_name_ok(const char *name)
{
	if (name[0] == '/')
		name++;
	return name[0] != '\0' && strchr(name, '/') == NULL &&
	    strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* The settings every layer reads, from the command line. */
static void
configure(const struct options *o)
{
	char err[512];

	cfg.default_iface = o->iface;
	cfg.max_sessions = o->max_sessions;
	cfg.buffer_kb = o->buffer_kb;
	if (o->group != NULL) {
		if (resolve_group(o->group, &cfg.gid, err, sizeof(err)) == -1)
			fatalx("%s", err);
		cfg.has_group = true;
		cfg.group_name = o->group;
	}
	if (!shm_name_ok(o->shm))
		fatalx("-m %s: not a segment name: one path component, "
		    "without '/' but for a leading one, and not '.' or '..'",
		    o->shm);
}

/* The segment's name without its leading '/': the pidfile's and the state file's. */
static const char *
base_name(const struct options *o)
{
	return o->shm[0] == '/' ? o->shm + 1 : o->shm;
}

/* Hold the pidfile, or say which daemon does. */
static struct pidfh *
pidfile_take(const struct options *o, char *path, size_t len)
{
	struct pidfh *pfh;
	pid_t other;

	if (snprintf(path, len, "%s/%s.pid", CTL_PID_DIR, base_name(o)) >=
	    (int)len)
		fatalx("-m %s: name too long", o->shm);
	if ((pfh = pidfile_open(path, 0644, &other)) == NULL) {
		if (errno == EEXIST)
			fatalx("another capstats daemon (pid %d) holds %s",
			    (int)other, path);
		fatal("pidfile %s", path);
	}
	return pfh;
}

/* Start the modules, bottom first; on failure, undo and exit. */
static void
start(const struct options *o, struct pidfh *pfh)
{
	char err[512], statepath[PATH_MAX];

	if (loop_init(err, sizeof(err)) == -1 ||
	    ctl_init(o->sock, err, sizeof(err)) == -1) {
		pidfile_remove(pfh);
		fatalx("%s", err);
	}
	if (sess_init(o->shm, o->max_sessions, err, sizeof(err)) == -1) {
		ctl_shutdown();
		pidfile_remove(pfh);
		fatalx("%s", err);
	}
	if (o->statefile != NULL)
		snprintf(statepath, sizeof(statepath), "%s", o->statefile);
	else {
		if (mkdir(CTL_STATE_DIR, 0700) == -1 && errno != EEXIST)
			log_warn("mkdir %s", CTL_STATE_DIR);
		snprintf(statepath, sizeof(statepath), "%s/%s.state",
		    CTL_STATE_DIR, base_name(o));
	}
	compile_init();
	state_init(statepath);
	state_restore();
}

int
daemon_main(const struct options *o)
{
	char err[512], pidpath[PATH_MAX];
	struct pidfh *pfh;

	log_init(true, o->debug);
	if (pcaplib_load(err, sizeof(err)) == -1)
		fatalx("%s", err);
	configure(o);
	umask(077);
	raise_fd_limit();
	pfh = pidfile_take(o, pidpath, sizeof(pidpath));
	if (!o->foreground)
		detach();
	if (pidfile_write(pfh) == -1)
		fatal("pidfile %s", pidpath);
	start(o, pfh);
	log_info("listening on %s, publishing /dev/shm/%s, %u sessions at most",
	    o->sock, base_name(o), o->max_sessions);
	if (!o->foreground)
		detached();

	loop_run();

	ctl_shutdown();
	sess_shutdown();	/* cancels its sessions' compiles */
	compile_shutdown();
	loop_end();
	pidfile_remove(pfh);
	return 0;
}
