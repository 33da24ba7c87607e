/*
 * compile.c: pcap_compile() with a deadline. libpcap's optimizer can take
 * seconds on a long filter, and the daemon has one loop: the compiler runs
 * in a child, and a filter it has not compiled within the deadline is
 * refused. The child only compiles; it touches no daemon state.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"

#define COMPILE_DEADLINE_MS	500
#define INSNS_MAX		4096	/* what the kernel attaches (BPF_MAXINSNS) */

/* What the child sends: this header, then the program or a message. */
struct compiled {
	int32_t		ok;
	uint32_t	len;	/* instructions, or bytes of message */
};

static void __attribute__((noreturn))
child(int fd, pcap_t *p, const char *filter)
{
	struct compiled c = { 1, 0 };
	struct bpf_program prog;
	const char *msg;
	char buf[96];

	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) == -1)
		msg = pcap_geterr(p);
	else if (prog.bf_len > INSNS_MAX) {
		snprintf(buf, sizeof(buf), "compiles to %u instructions; the "
		    "kernel takes at most %d", prog.bf_len, INSNS_MAX);
		msg = buf;
	} else {
		c.len = prog.bf_len;
		if (write(fd, &c, sizeof(c)) == sizeof(c) &&
		    write(fd, prog.bf_insns, c.len * sizeof(*prog.bf_insns)) ==
		    (ssize_t)(c.len * sizeof(*prog.bf_insns)))
			_exit(0);
		_exit(1);
	}
	c.ok = 0;
	c.len = (uint32_t)strlen(msg);
	if (write(fd, &c, sizeof(c)) != sizeof(c) || write(fd, msg, c.len) == -1)
		_exit(1);
	_exit(0);
}

/* Read what the child says, until EOF or the deadline; bytes read or -1. */
static ssize_t
collect(int fd, char *buf, size_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t deadline = now_mono() + COMPILE_DEADLINE_MS * 1000000ull, now;
	size_t got = 0;
	ssize_t n;

	for (;;) {
		now = now_mono();
		if (now >= deadline)
			return -1;
		if (poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP)))
			continue;
		if ((n = read(fd, buf + got, len - got)) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (n == 0 || (got += (size_t)n) == len)
			return (ssize_t)got;
	}
}

enum ctl_status
filter_compile(pcap_t *p, const char *filter, struct bpf_program *prog,
    char *err, size_t errlen)
{
	char buf[sizeof(struct compiled) + INSNS_MAX * sizeof(struct bpf_insn)];
	struct compiled c;
	ssize_t n;
	pid_t pid;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		snprintf(err, errlen, "compiling the filter: %s", strerror(errno));
		return CTL_INTERNAL;
	}
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], p, filter);
	}
	close(fds[1]);
	n = collect(fds[0], buf, sizeof(buf));
	close(fds[0]);
	if (n == -1)
		kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
	if (n == -1) {
		snprintf(err, errlen, "filter '%.100s...' takes more than %d ms "
		    "to compile; simplify it", filter, COMPILE_DEADLINE_MS);
		return CTL_TOOLONG;
	}
	if ((size_t)n < sizeof(c)) {
		snprintf(err, errlen, "compiling the filter: the compiler failed");
		return CTL_INTERNAL;
	}
	memcpy(&c, buf, sizeof(c));
	if (!c.ok) {
		snprintf(err, errlen, "filter '%.200s': %.*s", filter,
		    (int)((size_t)n - sizeof(c)), buf + sizeof(c));
		return CTL_BADFILTER;
	}
	if ((size_t)n != sizeof(c) + c.len * sizeof(struct bpf_insn) ||
	    (prog->bf_insns = calloc(c.len ? c.len : 1,
	    sizeof(struct bpf_insn))) == NULL) {
		snprintf(err, errlen, "compiling the filter: %s", (size_t)n !=
		    sizeof(c) + c.len * sizeof(struct bpf_insn) ?
		    "short program" : "out of memory");
		return CTL_INTERNAL;
	}
	memcpy(prog->bf_insns, buf + sizeof(c), c.len * sizeof(struct bpf_insn));
	prog->bf_len = c.len;
	return CTL_OK;
}
