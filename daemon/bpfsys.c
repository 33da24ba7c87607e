/*
 * bpfsys.c: bpf(2) and packet sockets for in-kernel counting: the counter
 * map, program loading and attaching, counter reads. Owns every system
 * call of that path; never prints and never exits: each failure is -1
 * with a message in the caller's buffer.
 */
#include <sys/socket.h>
#include <sys/syscall.h>

#include <arpa/inet.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpfsys.h"

#define CPU_POSSIBLE	"/sys/devices/system/cpu/possible"
#define OBJ_NAME	"capstats"
#define LOG_SIZE	(1024 * 1024)	/* the verifier's log, on refusal */
#define LOAD_TRIES	5		/* the kernel may answer EAGAIN */

/* No helper that only GPL code may call is used: any licence string loads. */
#define PROG_LICENSE	"BSD"

static uint64_t
ptr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static int
sys_bpf(int cmd, union bpf_attr *attr)
{
	return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/* Count the CPUs in a list like "0-3,8-11". */
static int
count_cpus(const char *s)
{
	unsigned long lo, hi;
	char *end;
	int n = 0;

	while (*s != '\0' && *s != '\n') {
		lo = strtoul(s, &end, 10);
		if (end == s)
			return -1;
		hi = lo;
		if (*end == '-') {
			s = end + 1;
			hi = strtoul(s, &end, 10);
			if (end == s || hi < lo)
				return -1;
		}
		n += (int)(hi - lo + 1);
		s = *end == ',' ? end + 1 : end;
	}
	return n > 0 ? n : -1;
}

int
bpfsys_ncpus(char *err, size_t errlen)
{
	char line[1024];
	FILE *f;
	int n = -1;

	if ((f = fopen(CPU_POSSIBLE, "re")) == NULL) {
		snprintf(err, errlen, "%s: %s", CPU_POSSIBLE, strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), f) != NULL)
		n = count_cpus(line);
	fclose(f);
	if (n == -1)
		snprintf(err, errlen, "%s: not a list of CPUs", CPU_POSSIBLE);
	return n;
}

/* ---- the counter map */

int
bpfsys_map_create(struct bpfsys_map *m, uint32_t slots, char *err,
    size_t errlen)
{
	union bpf_attr a;
	int n;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (slots == 0 || slots > XLATE_SLOTS_MAX) {
		snprintf(err, errlen, "%u counters: a map holds 1 to %d", slots,
		    XLATE_SLOTS_MAX);
		return -1;
	}
	if ((n = bpfsys_ncpus(err, errlen)) == -1)
		return -1;
	m->ncpus = (unsigned)n;
	m->slots = slots;
	m->cpu = calloc((size_t)m->ncpus * slots, sizeof(*m->cpu));
	m->base = calloc(slots, sizeof(*m->base));
	if (m->cpu == NULL || m->base == NULL) {
		snprintf(err, errlen, "out of memory");
		bpfsys_map_close(m);
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_PERCPU_ARRAY;
	a.key_size = sizeof(uint32_t);
	a.value_size = slots * (uint32_t)sizeof(struct xlate_count);
	a.max_entries = 1;
	strlcpy(a.map_name, OBJ_NAME, sizeof(a.map_name));
	if ((m->fd = sys_bpf(BPF_MAP_CREATE, &a)) == -1) {
		snprintf(err, errlen, "BPF_MAP_CREATE: %s", strerror(errno));
		bpfsys_map_close(m);
		return -1;
	}
	return 0;
}

void
bpfsys_map_close(struct bpfsys_map *m)
{
	if (m->fd >= 0)
		close(m->fd);
	free(m->cpu);
	free(m->base);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

int
bpfsys_map_fetch(struct bpfsys_map *m, char *err, size_t errlen)
{
	union bpf_attr a;
	uint32_t key = 0;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)m->fd;
	a.key = ptr(&key);
	a.value = ptr(m->cpu);
	if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &a) == -1) {
		snprintf(err, errlen, "BPF_MAP_LOOKUP_ELEM: %s",
		    strerror(errno));
		return -1;
	}
	return 0;
}

static void
sum(const struct bpfsys_map *m, uint32_t index, struct xlate_count *c)
{
	const struct xlate_count *v;
	unsigned i;

	c->packets = c->bytes = 0;
	for (i = 0; i < m->ncpus; i++) {
		v = &m->cpu[(size_t)i * m->slots + index];
		c->packets += v->packets;
		c->bytes += v->bytes;
	}
}

void
bpfsys_map_get(const struct bpfsys_map *m, uint32_t index,
    struct xlate_count *c)
{
	sum(m, index, c);
	c->packets -= m->base[index].packets;
	c->bytes -= m->base[index].bytes;
}

int
bpfsys_map_read(struct bpfsys_map *m, uint32_t index, struct xlate_count *c,
    char *err, size_t errlen)
{
	if (index >= m->slots) {
		snprintf(err, errlen, "counter %u: the map has %u", index,
		    m->slots);
		return -1;
	}
	if (bpfsys_map_fetch(m, err, errlen) == -1)
		return -1;
	bpfsys_map_get(m, index, c);
	return 0;
}

int
bpfsys_map_clear(struct bpfsys_map *m, uint32_t index, char *err,
    size_t errlen)
{
	if (index >= m->slots) {
		snprintf(err, errlen, "counter %u: the map has %u", index,
		    m->slots);
		return -1;
	}
	if (bpfsys_map_fetch(m, err, errlen) == -1)
		return -1;
	sum(m, index, &m->base[index]);
	return 0;
}

/* ---- programs */

/*
 * The verifier's reason: the line before its closing statistics
 * ("processed N insns..."). A log without them is only the start of a
 * longer one (kernels before 6.4 keep the start, later ones the end).
 */
static const char *
log_reason(char *log)
{
	char *stats = NULL, *p, *line;

	for (p = log; (p = strstr(p, "processed ")) != NULL; p++)
		if (p == log || p[-1] == '\n')
			stats = p;
	if (stats == NULL)
		return NULL;
	for (p = stats; p > log && p[-1] == '\n'; p--)
		continue;
	*p = '\0';
	for (line = p; line > log && line[-1] != '\n'; line--)
		continue;
	return *line != '\0' ? line : NULL;
}

static int
prog_load(const struct xlate_prog *p, char *log, size_t loglen)
{
	union bpf_attr a;
	int fd, tries = 0;

	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = ptr(p->insns);
	a.insn_cnt = (uint32_t)p->len;
	a.license = ptr(PROG_LICENSE);
	strlcpy(a.prog_name, OBJ_NAME, sizeof(a.prog_name));
	if (log != NULL) {
		a.log_level = 1;
		a.log_buf = ptr(log);
		a.log_size = (uint32_t)loglen;
		log[0] = '\0';
	}
	do
		fd = sys_bpf(BPF_PROG_LOAD, &a);
	while (fd == -1 && errno == EAGAIN && ++tries < LOAD_TRIES);
	return fd;
}

/*
 * Without a log first: logging every instruction the verifier walks costs
 * time, and a log buffer that fills up fails the load by itself. Only a
 * refused program is loaded again, for the reason.
 */
int
bpfsys_prog_load(const struct xlate_prog *p, char *err, size_t errlen)
{
	const char *why = NULL;
	int fd, saved;
	char *log;

	if ((fd = prog_load(p, NULL, 0)) >= 0)
		return fd;
	saved = errno;
	if ((log = malloc(LOG_SIZE)) != NULL &&
	    (fd = prog_load(p, log, LOG_SIZE)) == -1)
		why = log_reason(log);
	if (why != NULL)
		snprintf(err, errlen, "BPF_PROG_LOAD: %s: %s", strerror(saved),
		    why);
	else
		snprintf(err, errlen, "BPF_PROG_LOAD: %s", strerror(saved));
	free(log);
	if (fd >= 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int
bpfsys_progs_create(uint32_t n, char *err, size_t errlen)
{
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_PROG_ARRAY;
	a.key_size = sizeof(uint32_t);
	a.value_size = sizeof(uint32_t);
	a.max_entries = n;
	strlcpy(a.map_name, OBJ_NAME, sizeof(a.map_name));
	if ((fd = sys_bpf(BPF_MAP_CREATE, &a)) == -1)
		snprintf(err, errlen, "BPF_MAP_CREATE (programs): %s",
		    strerror(errno));
	return fd;
}

int
bpfsys_progs_set(int progs, uint32_t index, int prog_fd, char *err,
    size_t errlen)
{
	uint32_t value = (uint32_t)prog_fd;
	union bpf_attr a;
	int cmd = prog_fd >= 0 ? BPF_MAP_UPDATE_ELEM : BPF_MAP_DELETE_ELEM;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)progs;
	a.key = ptr(&index);
	if (prog_fd >= 0)
		a.value = ptr(&value);
	if (sys_bpf(cmd, &a) == -1 && !(prog_fd < 0 && errno == ENOENT)) {
		snprintf(err, errlen, "program %u of the chain: %s", index,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
bpfsys_hash_create(uint32_t value_size, uint32_t n, char *err, size_t errlen)
{
	union bpf_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_HASH;
	a.key_size = sizeof(uint32_t);
	a.value_size = value_size;
	a.max_entries = n;
	strlcpy(a.map_name, OBJ_NAME, sizeof(a.map_name));
	if ((fd = sys_bpf(BPF_MAP_CREATE, &a)) == -1)
		snprintf(err, errlen, "BPF_MAP_CREATE (hash): %s",
		    strerror(errno));
	return fd;
}

int
bpfsys_elem(int fd, int op, uint32_t key, void *value, char *err,
    size_t errlen)
{
	static const int cmds[] = { BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM,
	    BPF_MAP_DELETE_ELEM };
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.map_fd = (uint32_t)fd;
	a.key = ptr(&key);
	if (op != BPFSYS_DEL)
		a.value = ptr(value);
	if (sys_bpf(cmds[op], &a) == 0)
		return 0;
	if (errno == ENOENT && op != BPFSYS_SET)
		return 1;
	snprintf(err, errlen, "map element %u: %s", key, strerror(errno));
	return -1;
}

int
bpfsys_attach(int sock, int prog_fd, char *err, size_t errlen)
{
	if (setsockopt(sock, SOL_SOCKET, SO_ATTACH_BPF, &prog_fd,
	    sizeof(prog_fd)) == -1) {
		snprintf(err, errlen, "SO_ATTACH_BPF: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Protocol 0 at creation: the socket receives nothing until bind() names
 * ETH_P_ALL, by which time the program is in place.
 */
int
bpfsys_socket(int ifindex, int type, int prog_fd, char *err,
    size_t errlen)
{
	struct sockaddr_ll sll;
	int fd, small = 1;

	fd = socket(AF_PACKET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "packet socket: %s", strerror(errno));
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small,
	    sizeof(small)) == -1) {
		snprintf(err, errlen, "SO_RCVBUF: %s", strerror(errno));
		goto fail;
	}
	if (bpfsys_attach(fd, prog_fd, err, errlen) == -1)
		goto fail;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = ifindex;
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) == -1) {
		snprintf(err, errlen, "bind to interface %d: %s", ifindex,
		    strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int
bpfsys_test_run(int prog_fd, const void *data, size_t len, uint32_t repeat,
    uint32_t *retval, uint32_t *ns, char *err, size_t errlen)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.test.prog_fd = (uint32_t)prog_fd;
	a.test.data_in = ptr(data);
	a.test.data_size_in = (uint32_t)len;
	a.test.repeat = repeat;
	if (sys_bpf(BPF_PROG_TEST_RUN, &a) == -1) {
		snprintf(err, errlen, "BPF_PROG_TEST_RUN: %s", strerror(errno));
		return -1;
	}
	*retval = a.test.retval;
	if (ns != NULL)
		*ns = a.test.duration;
	return 0;
}

/* ---- the probe */

/*
 * Every kind of code xlate emits: the prefix copy, an aligned and a byte
 * by byte read of it, a variable offset into it, the helper past it, an
 * ancillary field, a 32-bit compare and a count.
 */
static const struct sock_filter probe[] = {
	BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),
	BPF_STMT(BPF_LD | BPF_H | BPF_IND, 200),
	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 13),
	BPF_STMT(BPF_LD | BPF_B | BPF_ABS,
	    SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
	BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 0x80000000u, 0, 1),
	BPF_STMT(BPF_RET | BPF_K, 1),
	BPF_STMT(BPF_RET | BPF_A, 0),
};

static int
probe_attach(int prog_fd, char *why, size_t whylen)
{
	int fd, rc;

	if ((fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)) == -1) {
		snprintf(why, whylen, "packet socket: %s", strerror(errno));
		return -1;
	}
	rc = bpfsys_attach(fd, prog_fd, why, whylen);
	close(fd);
	return rc;
}

int
bpfsys_available(char *why, size_t whylen)
{
	struct xlate_filter f = { probe, sizeof(probe) / sizeof(probe[0]), 0 };
	struct xlate_prog prog;
	struct bpfsys_map m;
	int fd, rc = -1;

	if (bpfsys_map_create(&m, 1, why, whylen) == -1)
		return -1;
	if (xlate_build(&f, 1, m.fd, m.slots, NULL, &prog, why,
	    whylen) == 0) {
		if ((fd = bpfsys_prog_load(&prog, why, whylen)) >= 0) {
			rc = probe_attach(fd, why, whylen);
			close(fd);
		}
		xlate_free(&prog);
	}
	bpfsys_map_close(&m);
	return rc;
}
