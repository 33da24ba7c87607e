/*
 * kpath.c: the kernel counting path. The sessions on one interface share
 * one packet socket and one eBPF program that runs each session's filter
 * and counts what it accepts in a per-CPU map; no packet reaches user
 * space. This file owns the groups; xlate.c translates, bpfsys.c loads.
 */
#include <sys/epoll.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/if.h>

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpfsys.h"
#include "daemon.h"
#include "log.h"
#include "xlate.h"

#define GROUP_SLOTS	512	/* sessions one interface's program counts */
#define COMPILE_BUFFER	(64 * 1024)

struct kgroup {
	struct evsrc		 ev;	/* the socket: an error means the interface went */
	LIST_ENTRY(kgroup)	 entry;
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	struct bpfsys_map	 map;
	unsigned		 nmembers;
	struct sess		*member[GROUP_SLOTS];	/* by counter index */
};

struct kstate {
	struct kgroup		*g;
	uint32_t		 idx;
	struct bpf_program	 prog;	/* the session's classic filter */
	uint64_t		 base_packets, base_bytes;	/* before this open */
};

/*
 * On loopback every packet passes the socket twice, outgoing and incoming;
 * libpcap drops the outgoing copy, and so must the kernel path. Prepend
 * to the filter: if the packet type is PACKET_OUTGOING, reject.
 */
static int
skip_outgoing(struct bpf_program *prog)
{
	static const struct bpf_insn head[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	const size_t n = sizeof(head) / sizeof(head[0]);
	struct bpf_insn *insns;

	if ((insns = calloc(prog->bf_len + n, sizeof(*insns))) == NULL)
		return -1;
	memcpy(insns, head, sizeof(head));
	memcpy(insns + n, prog->bf_insns, prog->bf_len * sizeof(*insns));
	free(prog->bf_insns);
	prog->bf_insns = insns;
	prog->bf_len += n;
	return 0;
}

static LIST_HEAD(, kgroup) groups = LIST_HEAD_INITIALIZER(groups);
static int available = -1;	/* probed once */
static char unavailable_why[256];

bool
kpath_available(char *why, size_t whylen)
{
	if (available == -1) {
		available = bpfsys_available(unavailable_why,
		    sizeof(unavailable_why)) == 0;
		if (!available)
			log_info("kernel counting path unavailable: %s",
			    unavailable_why);
	}
	if (!available)
		snprintf(why, whylen, "%s", unavailable_why);
	return available;
}

bool
kpath_active(void)
{
	return !LIST_EMPTY(&groups);
}

/*
 * Compile FILTER as libpcap compiles it for a live capture on IFACE, with
 * the Linux VLAN and packet type extensions, and check that it translates.
 */
static enum ctl_status
kpath_compile(const char *iface, const char *filter, struct bpf_program *prog,
    char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	enum ctl_status st;
	pcap_t *p;
	int rc;

	if ((rc = iface_flags(iface)) != -1 && !(rc & IFF_UP)) {
		snprintf(err, errlen, "%s: interface is down", iface);
		return CTL_BADIFACE;
	}
	if ((p = pcap_create(iface, ebuf)) == NULL) {
		snprintf(err, errlen, "%s: %s", iface, ebuf);
		return CTL_BADIFACE;
	}
	pcap_set_snaplen(p, 128);
	pcap_set_buffer_size(p, COMPILE_BUFFER);
	if ((rc = pcap_activate(p)) < 0) {
		snprintf(err, errlen, "%s: %s", iface,
		    rc == PCAP_ERROR_NO_SUCH_DEVICE ? "no such interface" :
		    pcap_geterr(p));
		pcap_close(p);
		return rc == PCAP_ERROR_PERM_DENIED ? CTL_PERM : CTL_BADIFACE;
	}
	if (pcap_datalink(p) != DLT_EN10MB) {
		snprintf(err, errlen, "%s: link type %s is not Ethernet", iface,
		    pcap_datalink_val_to_name(pcap_datalink(p)));
		pcap_close(p);
		return CTL_BADIFACE;
	}
	if ((st = filter_compile(p, filter, prog, err, errlen)) != CTL_OK) {
		pcap_close(p);
		return st;
	}
	pcap_close(p);
	if ((rc = iface_flags(iface)) != -1 && (rc & IFF_LOOPBACK) &&
	    skip_outgoing(prog) == -1) {
		pcap_freecode(prog);
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if (xlate_check((const struct sock_filter *)prog->bf_insns,
	    prog->bf_len, err, errlen) == -1) {
		pcap_freecode(prog);
		return CTL_BADFILTER;
	}
	return CTL_OK;
}

/* Build the group's program from its members' filters and attach it. */
static int
kgroup_swap(struct kgroup *g, char *err, size_t errlen)
{
	struct xlate_filter f[GROUP_SLOTS];
	struct xlate_prog prog;
	struct kstate *ks;
	size_t n = 0;
	uint32_t i;
	int fd, rc;

	for (i = 0; i < GROUP_SLOTS; i++) {
		if (g->member[i] == NULL)
			continue;
		ks = g->member[i]->path_state;
		f[n].insns = (const struct sock_filter *)ks->prog.bf_insns;
		f[n].len = ks->prog.bf_len;
		f[n++].index = i;
	}
	if (xlate_build(f, n, g->map.fd, g->map.slots, &prog, err, errlen) == -1)
		return -1;
	fd = bpfsys_prog_load(&prog, err, errlen);
	xlate_free(&prog);
	if (fd == -1)
		return -1;
	rc = g->ev.fd == -1 ? 0 : bpfsys_attach(g->ev.fd, fd, err, errlen);
	if (rc == 0 && g->ev.fd == -1) {
		g->ev.fd = bpfsys_socket((int)if_nametoindex(g->iface), fd,
		    err, errlen);
		rc = g->ev.fd == -1 ? -1 : 0;
	}
	close(fd);
	return rc;
}

static void kgroup_error(struct evsrc *, uint32_t);

static struct kgroup *
kgroup_get(const char *iface, char *err, size_t errlen)
{
	struct kgroup *g;

	LIST_FOREACH(g, &groups, entry)
		if (strcmp(g->iface, iface) == 0)
			return g;
	if (if_nametoindex(iface) == 0) {
		snprintf(err, errlen, "%s: no such interface", iface);
		return NULL;
	}
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (bpfsys_map_create(&g->map, GROUP_SLOTS, err, errlen) == -1) {
		free(g);
		return NULL;
	}
	strlcpy(g->iface, iface, sizeof(g->iface));
	g->ev.fd = -1;
	g->ev.fn = kgroup_error;
	if (LIST_EMPTY(&groups))
		fold_timer(true);
	LIST_INSERT_HEAD(&groups, g, entry);
	return g;
}

static void
kgroup_put(struct kgroup *g)
{
	if (g->nmembers > 0)
		return;
	LIST_REMOVE(g, entry);
	if (g->ev.fd != -1) {
		ev_del(&g->ev);
		close(g->ev.fd);
	}
	bpfsys_map_close(&g->map);
	free(g);
	if (LIST_EMPTY(&groups))
		fold_timer(false);
}

/* The socket failed: the interface is gone or down; every member fails. */
static void
kgroup_error(struct evsrc *src, uint32_t events)
{
	struct kgroup *g = (struct kgroup *)src;
	struct sess *fail[GROUP_SLOTS];
	char why[128];
	unsigned i, n = 0;

	(void)events;
	snprintf(why, sizeof(why), "%s: the interface %s", g->iface,
	    if_nametoindex(g->iface) == 0 ? "disappeared" : "went down");
	for (i = 0; i < GROUP_SLOTS; i++)
		if (g->member[i] != NULL)
			fail[n++] = g->member[i];
	for (i = 0; i < n; i++)
		sess_fail(fail[i], why);	/* the last one frees g */
}

static enum ctl_status
kpath_open(struct sess *s, char *err, size_t errlen)
{
	struct kstate *ks;
	struct kgroup *g;
	enum ctl_status st;
	bool new_socket;
	uint32_t i;

	if ((ks = calloc(1, sizeof(*ks))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if ((st = kpath_compile(s->iface, s->filter, &ks->prog, err,
	    errlen)) != CTL_OK) {
		free(ks);
		return st;
	}
	if ((g = kgroup_get(s->iface, err, errlen)) == NULL) {
		pcap_freecode(&ks->prog);
		free(ks);
		return CTL_BADIFACE;
	}
	for (i = 0; i < GROUP_SLOTS && g->member[i] != NULL; i++)
		;
	if (i == GROUP_SLOTS || bpfsys_map_clear(&g->map, i, err, errlen) == -1) {
		if (i == GROUP_SLOTS)
			snprintf(err, errlen, "%s: %d kernel sessions already",
			    s->iface, GROUP_SLOTS);
		kgroup_put(g);
		pcap_freecode(&ks->prog);
		free(ks);
		return CTL_FULL;
	}
	ks->g = g;
	ks->idx = i;
	ks->base_packets = s->packets;
	ks->base_bytes = s->bytes;
	s->path_state = ks;
	g->member[i] = s;
	g->nmembers++;
	new_socket = g->ev.fd == -1;
	if (kgroup_swap(g, err, errlen) == -1 ||
	    (new_socket && ev_add(&g->ev, 0) == -1)) {
		g->member[i] = NULL;
		g->nmembers--;
		if (g->nmembers > 0 && kgroup_swap(g, err + strlen(err),
		    errlen - strlen(err)) == -1)
			log_warnx("%s: restoring the kernel program failed", g->iface);
		kgroup_put(g);
		pcap_freecode(&ks->prog);
		free(ks);
		s->path_state = NULL;
		return CTL_BADFILTER;
	}
	return CTL_OK;
}

static enum ctl_status
kpath_check(struct sess *s, const char *filter, char *err, size_t errlen)
{
	struct bpf_program prog;
	enum ctl_status st;

	if ((st = kpath_compile(s->iface, filter, &prog, err, errlen)) == CTL_OK)
		pcap_freecode(&prog);
	return st;
}

static enum ctl_status
kpath_refilter(struct sess *s, const char *filter, char *err, size_t errlen)
{
	struct kstate *ks = s->path_state;
	struct bpf_program prog, old;
	enum ctl_status st;

	if ((st = kpath_compile(s->iface, filter, &prog, err, errlen)) != CTL_OK)
		return st;
	old = ks->prog;
	ks->prog = prog;
	if (kgroup_swap(ks->g, err, errlen) == -1) {
		ks->prog = old;
		pcap_freecode(&prog);
		return CTL_BADFILTER;
	}
	pcap_freecode(&old);
	return CTL_OK;
}

/* Nothing is queued to this path: its counters are folded on a timer. */
static int
kpath_collect(struct sess *s, int budget, char *err, size_t errlen)
{
	(void)s;
	(void)budget;
	(void)err;
	(void)errlen;
	return 0;
}

/* Copy one member's sums from the group's last fetch. */
static bool
kpath_take(struct sess *s, uint64_t now_real_ns)
{
	struct kstate *ks = s->path_state;
	struct xlate_count c;
	uint64_t packets;

	bpfsys_map_get(&ks->g->map, ks->idx, &c);
	packets = ks->base_packets + c.packets;
	if (packets == s->packets)
		return false;
	s->packets = packets;
	s->bytes = ks->base_bytes + c.bytes;
	s->last_packet_ns = now_real_ns;
	return true;
}

/* The fold keeps the counts; this path drops nothing. */
static void
kpath_stats(struct sess *s)
{
	(void)s;
}

static void
kpath_close(struct sess *s)
{
	struct kstate *ks = s->path_state;
	struct kgroup *g = ks->g;
	char err[256];

	/* The last counts, before the program stops counting for S. */
	if (bpfsys_map_fetch(&g->map, err, sizeof(err)) == 0)
		kpath_take(s, now_real());
	g->member[ks->idx] = NULL;
	g->nmembers--;
	if (g->nmembers > 0 && g->ev.fd != -1 &&
	    kgroup_swap(g, err, sizeof(err)) == -1)
		log_warnx("%s: rebuilding the kernel program: %s", g->iface, err);
	kgroup_put(g);
	pcap_freecode(&ks->prog);
	free(ks);
	s->path_state = NULL;
}

/* Fold every group's counters into its sessions and publish what moved. */
void
kpath_fold(void)
{
	uint64_t now = now_real();
	struct kgroup *g;
	char err[256];
	unsigned i;

	LIST_FOREACH(g, &groups, entry) {
		if (bpfsys_map_fetch(&g->map, err, sizeof(err)) == -1) {
			log_warnx("%s: reading kernel counters: %s", g->iface, err);
			continue;
		}
		for (i = 0; i < GROUP_SLOTS; i++)
			if (g->member[i] != NULL && kpath_take(g->member[i], now))
				sess_publish(g->member[i]);
	}
}

const struct path_ops kernel_path = {
	.name = "kernel",
	.open = kpath_open,
	.check = kpath_check,
	.refilter = kpath_refilter,
	.collect = kpath_collect,
	.stats = kpath_stats,
	.close = kpath_close,
};
