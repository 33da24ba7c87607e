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

struct kgroup {
	struct evsrc		 ev;	/* the socket: an error means the interface went */
	LIST_ENTRY(kgroup)	 entry;
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	const struct link	*link;
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
 * libpcap drops the outgoing copy, and so must the kernel path: on lo, and
 * on "any" for packets of lo. Prepend to the filter: if the packet type is
 * PACKET_OUTGOING (and the interface is lo), reject.
 */
static int
skip_outgoing(struct bpf_program *prog, bool any, uint32_t lo)
{
	struct bpf_insn head[5], *insns;
	size_t n = 0;

	head[n++] = (struct bpf_insn)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    SKF_AD_OFF + SKF_AD_PKTTYPE);
	head[n++] = (struct bpf_insn)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    PACKET_OUTGOING, 0, any ? 3 : 1);
	if (any) {
		head[n++] = (struct bpf_insn)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		    SKF_AD_OFF + SKF_AD_IFINDEX);
		head[n++] = (struct bpf_insn)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
		    lo, 0, 1);
	}
	head[n++] = (struct bpf_insn)BPF_STMT(BPF_RET | BPF_K, 0);
	if ((insns = calloc(prog->bf_len + n, sizeof(*insns))) == NULL)
		return -1;
	memcpy(insns, head, n * sizeof(*insns));
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

/* The interface index to bind to: 0 for every interface. */
static int
kpath_ifindex(const char *iface)
{
	return strcmp(iface, "any") == 0 ? 0 : (int)if_nametoindex(iface);
}

/*
 * The program the kernel path runs for IN, compiled for link type DLT on
 * IFACE: with its loads moved as libpcap moves them for a cooked socket,
 * the outgoing copies of loopback packets dropped as libpcap drops them,
 * and checked to translate. Refusals that libpcap can count are
 * CTL_UNSUPPORTED or CTL_BADFILTER.
 */
static enum ctl_status
kpath_prepare(const char *iface, const struct bpf_program *in, int dlt,
    struct bpf_program *out, char *err, size_t errlen)
{
	const struct link *l = link_get(dlt);
	bool any = strcmp(iface, "any") == 0;
	int flags;

	if (l == NULL) {
		snprintf(err, errlen, "%s: link type %s is not one the kernel "
		    "path counts on", iface, pcap_datalink_val_to_name(dlt) ?
		    pcap_datalink_val_to_name(dlt) : "unknown");
		return CTL_UNSUPPORTED;
	}
	out->bf_len = in->bf_len;
	if ((out->bf_insns = calloc(in->bf_len ? in->bf_len : 1,
	    sizeof(*in->bf_insns))) == NULL)
		goto nomem;
	memcpy(out->bf_insns, in->bf_insns, in->bf_len * sizeof(*in->bf_insns));
	if (link_fix(l, out) == -1) {
		snprintf(err, errlen, "%s: the filter reads a field of the "
		    "%s header that the kernel does not keep", iface,
		    pcap_datalink_val_to_name(dlt));
		pcap_freecode(out);
		return CTL_UNSUPPORTED;
	}
	if (((flags = iface_flags(iface)) != -1 && (flags & IFF_LOOPBACK)) ||
	    any) {
		if (skip_outgoing(out, any, if_nametoindex("lo")) == -1) {
			pcap_freecode(out);
			goto nomem;
		}
	}
	if (xlate_check((const struct sock_filter *)out->bf_insns, out->bf_len,
	    err, errlen) == -1) {
		pcap_freecode(out);
		return CTL_BADFILTER;
	}
	return CTL_OK;
nomem:
	snprintf(err, errlen, "out of memory");
	return CTL_NOMEM;
}

/* Build the group's program from its members' filters and attach it. */
static int
kgroup_swap(struct kgroup *g, char *err, size_t errlen)
{
	struct xlate_filter f[GROUP_SLOTS];
	struct xlate_wire wire;
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
	wire.hdr_len = g->link->hdr_len;
	wire.vlan_len = g->link->vlan_len;
	if (xlate_build(f, n, g->map.fd, g->map.slots, &wire, &prog, err,
	    errlen) == -1)
		return -1;
	fd = bpfsys_prog_load(&prog, err, errlen);
	xlate_free(&prog);
	if (fd == -1)
		return -1;
	rc = g->ev.fd == -1 ? 0 : bpfsys_attach(g->ev.fd, fd, err, errlen);
	if (rc == 0 && g->ev.fd == -1) {
		g->ev.fd = bpfsys_socket(kpath_ifindex(g->iface),
		    g->link->cooked ? SOCK_DGRAM : SOCK_RAW, fd, err, errlen);
		rc = g->ev.fd == -1 ? -1 : 0;
	}
	close(fd);
	return rc;
}

static void kgroup_error(struct evsrc *, uint32_t);

static struct kgroup *
kgroup_get(const char *iface, int dlt, char *err, size_t errlen)
{
	struct kgroup *g;

	LIST_FOREACH(g, &groups, entry) {
		if (strcmp(g->iface, iface) != 0)
			continue;
		if (g->link->dlt == dlt)
			return g;
		snprintf(err, errlen, "%s: the link type changed; stop the "
		    "other sessions on it first", iface);
		return NULL;
	}
	if (strcmp(iface, "any") != 0 && if_nametoindex(iface) == 0) {
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
	g->link = link_get(dlt);
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
		g->ev.fd = -1;
	}
	bpfsys_map_close(&g->map);
	loop_free_later(g);
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
kpath_open(struct sess *s, const struct bpf_program *prog, int dlt, char *err,
    size_t errlen)
{
	char again[256];
	struct kstate *ks;
	struct kgroup *g;
	enum ctl_status st;
	bool new_socket;
	uint32_t i;

	if ((ks = calloc(1, sizeof(*ks))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if ((st = kpath_prepare(s->iface, prog, dlt, &ks->prog, err,
	    errlen)) != CTL_OK) {
		free(ks);
		return st;
	}
	if ((g = kgroup_get(s->iface, dlt, err, errlen)) == NULL) {
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
		if (g->nmembers > 0 && kgroup_swap(g, again, sizeof(again)) == -1)
			log_warnx("%s: restoring the kernel program: %s",
			    g->iface, again);
		kgroup_put(g);
		pcap_freecode(&ks->prog);
		free(ks);
		s->path_state = NULL;
		return CTL_BADFILTER;
	}
	return CTL_OK;
}

static enum ctl_status
kpath_refilter(struct sess *s, const struct bpf_program *in, int dlt,
    char *err, size_t errlen)
{
	struct kstate *ks = s->path_state;
	struct bpf_program prog, old;
	enum ctl_status st;

	if (dlt != ks->g->link->dlt) {
		snprintf(err, errlen, "%s: the link type changed", s->iface);
		return CTL_UNSUPPORTED;
	}
	if ((st = kpath_prepare(s->iface, in, dlt, &prog, err, errlen)) != CTL_OK)
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

/*
 * The daemon is ending: every group's socket goes at once, so that closing
 * its sessions one by one rebuilds no program (kpath_close() takes their
 * last counts from the map).
 */
void
kpath_shutdown(void)
{
	struct kgroup *g;

	LIST_FOREACH(g, &groups, entry) {
		if (g->ev.fd == -1)
			continue;
		ev_del(&g->ev);
		close(g->ev.fd);
		g->ev.fd = -1;
	}
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
	.refilter = kpath_refilter,
	.collect = kpath_collect,
	.stats = kpath_stats,
	.close = kpath_close,
};
