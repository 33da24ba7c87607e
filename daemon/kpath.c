/*
 * kpath.c: the kernel counting path. The sessions on one interface share
 * one packet socket, whose small program tail-calls a chain of eBPF
 * programs: each runs the filters of up to CHUNK_SLOTS sessions, counts
 * what they accept in its own per-CPU map, and tail-calls the next. No
 * packet reaches user space, and a change rebuilds one link of the chain.
 * This file owns the groups; xlate.c translates, bpfsys.c loads.
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

/*
 * A link of the chain is rebuilt and verified whenever one of its sessions
 * comes, changes or goes: small links keep that cheap, and the kernel
 * follows at most 33 tail calls, the head's included.
 */
#define CHUNK_SLOTS	128	/* sessions one link counts */
#define CHUNKS		32	/* links in a chain */
_Static_assert(CHUNK_SLOTS * CHUNKS >= CTL_SESSIONS_MAX,
    "every session of -n can count on one interface");

struct kchunk {
	struct bpfsys_map	 map;		/* its counters; fd -1: none yet */
	unsigned		 n;
	struct sess		*member[CHUNK_SLOTS];	/* by counter index */
};

struct kgroup {
	struct evsrc		 ev;	/* the socket: an error means the interface went */
	LIST_ENTRY(kgroup)	 entry;
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	const struct link	*link;
	int			 progs;		/* the chain's program array */
	unsigned		 nmembers;
	unsigned		 nchunks;	/* links 0 to nchunks - 1 are loaded */
	struct kchunk		 chunk[CHUNKS];
};

struct kstate {
	struct kgroup		*g;
	uint32_t		 chunk, idx;
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

/* Build link C of G's chain from its members' filters and put it in place. */
static int
kchunk_load(struct kgroup *g, uint32_t c, char *err, size_t errlen)
{
	struct xlate_filter f[CHUNK_SLOTS];
	struct kchunk *k = &g->chunk[c];
	struct xlate_wire wire;
	struct xlate_prog prog;
	struct kstate *ks;
	size_t n = 0;
	uint32_t i;
	int fd, rc;

	for (i = 0; i < CHUNK_SLOTS; i++) {
		if (k->member[i] == NULL)
			continue;
		ks = k->member[i]->path_state;
		f[n].insns = (const struct sock_filter *)ks->prog.bf_insns;
		f[n].len = ks->prog.bf_len;
		f[n++].index = i;
	}
	wire.hdr_len = g->link->hdr_len;
	wire.vlan_len = g->link->vlan_len;
	if (xlate_build_chain(f, n, k->map.fd, k->map.slots, &wire, g->progs,
	    c + 1, &prog, err, errlen) == -1)
		return -1;
	fd = bpfsys_prog_load(&prog, err, errlen);
	xlate_free(&prog);
	if (fd == -1)
		return -1;
	rc = bpfsys_progs_set(g->progs, c, fd, err, errlen);
	close(fd);
	return rc;
}

/* The group's socket, running the head of its chain. */
static int
kgroup_socket(struct kgroup *g, char *err, size_t errlen)
{
	struct xlate_prog head;
	int fd;

	if (xlate_build_head(g->progs, &head, err, errlen) == -1)
		return -1;
	fd = bpfsys_prog_load(&head, err, errlen);
	xlate_free(&head);
	if (fd == -1)
		return -1;
	g->ev.fd = bpfsys_socket(kpath_ifindex(g->iface),
	    g->link->cooked ? SOCK_DGRAM : SOCK_RAW, fd, err, errlen);
	close(fd);
	if (g->ev.fd == -1)
		return -1;
	if (ev_add(&g->ev, 0) == -1) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		close(g->ev.fd);
		g->ev.fd = -1;
		return -1;
	}
	return 0;
}

static void kgroup_error(struct evsrc *, uint32_t);
static void kgroup_put(struct kgroup *);

static struct kgroup *
kgroup_find(const char *iface)
{
	struct kgroup *g;

	LIST_FOREACH(g, &groups, entry)
		if (strcmp(g->iface, iface) == 0)
			return g;
	return NULL;
}

static struct kgroup *
kgroup_get(const char *iface, int dlt, char *err, size_t errlen)
{
	struct kgroup *g;
	unsigned c;

	if ((g = kgroup_find(iface)) != NULL) {
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
	strlcpy(g->iface, iface, sizeof(g->iface));
	g->link = link_get(dlt);
	g->ev.fd = -1;
	g->ev.fn = kgroup_error;
	for (c = 0; c < CHUNKS; c++)
		g->chunk[c].map.fd = -1;
	if (LIST_EMPTY(&groups))
		fold_timer(true);
	LIST_INSERT_HEAD(&groups, g, entry);
	if ((g->progs = bpfsys_progs_create(CHUNKS, err, errlen)) == -1 ||
	    kgroup_socket(g, err, errlen) == -1) {
		kgroup_put(g);
		return NULL;
	}
	return g;
}

/* Drop the links past the last that counts for a session. */
static void
kgroup_trim(struct kgroup *g)
{
	struct kchunk *k;
	char err[256];

	while (g->nchunks > 0 && (k = &g->chunk[g->nchunks - 1])->n == 0) {
		if (g->progs != -1 && bpfsys_progs_set(g->progs,
		    g->nchunks - 1, -1, err, sizeof(err)) == -1)
			log_warnx("%s: %s", g->iface, err);
		bpfsys_map_close(&k->map);
		k->map.fd = -1;
		g->nchunks--;
	}
}

static void
kgroup_put(struct kgroup *g)
{
	unsigned c;

	if (g->nmembers > 0)
		return;
	kgroup_trim(g);
	LIST_REMOVE(g, entry);
	if (g->ev.fd != -1) {
		ev_del(&g->ev);
		close(g->ev.fd);
		g->ev.fd = -1;
	}
	for (c = 0; c < CHUNKS; c++)
		if (g->chunk[c].map.fd != -1)
			bpfsys_map_close(&g->chunk[c].map);
	if (g->progs != -1)
		close(g->progs);
	loop_free_later(g);
	if (LIST_EMPTY(&groups))
		fold_timer(false);
}

/* The socket failed: the interface is gone or down; every member fails. */
static void
kgroup_error(struct evsrc *src, uint32_t events)
{
	struct kgroup *g = (struct kgroup *)src;
	struct sess *fail[CHUNKS * CHUNK_SLOTS];
	char why[128];
	unsigned c, i, n = 0;

	(void)events;
	snprintf(why, sizeof(why), "%s: the interface %s", g->iface,
	    if_nametoindex(g->iface) == 0 ? "disappeared" : "went down");
	for (c = 0; c < g->nchunks; c++)
		for (i = 0; i < CHUNK_SLOTS; i++)
			if (g->chunk[c].member[i] != NULL)
				fail[n++] = g->chunk[c].member[i];
	for (i = 0; i < n; i++)
		sess_fail(fail[i], why);	/* the last one frees g */
}

/* A free counter of G: its link (made when new) and index in it. */
static int
kgroup_slot(struct kgroup *g, uint32_t *chunk, uint32_t *idx, char *err,
    size_t errlen)
{
	struct kchunk *k;
	uint32_t c, i;

	for (c = 0; c < CHUNKS && g->chunk[c].n == CHUNK_SLOTS; c++)
		;
	if (c == CHUNKS) {
		snprintf(err, errlen, "%s: %d kernel sessions already",
		    g->iface, CHUNKS * CHUNK_SLOTS);
		return -1;
	}
	k = &g->chunk[c];
	if (k->map.fd == -1 && bpfsys_map_create(&k->map, CHUNK_SLOTS, err,
	    errlen) == -1) {
		k->map.fd = -1;
		return -1;
	}
	for (i = 0; k->member[i] != NULL; i++)
		;
	if (bpfsys_map_clear(&k->map, i, err, errlen) == -1)
		return -1;
	*chunk = c;
	*idx = i;
	return 0;
}

/*
 * Put S in link C of G at index I and load that link. On failure the
 * array still holds the link without S.
 */
static int
kgroup_join(struct kgroup *g, struct sess *s, uint32_t c, uint32_t i,
    char *err, size_t errlen)
{
	struct kchunk *k = &g->chunk[c];

	k->member[i] = s;
	k->n++;
	g->nmembers++;
	if (kchunk_load(g, c, err, errlen) == 0) {
		if (c == g->nchunks)	/* a new last link */
			g->nchunks++;
		return 0;
	}
	k->member[i] = NULL;
	k->n--;
	g->nmembers--;
	return -1;
}

static enum ctl_status
kpath_open(struct sess *s, const struct bpf_program *prog, int dlt, char *err,
    size_t errlen)
{
	struct kstate *ks;
	struct kgroup *g;
	enum ctl_status st;

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
		st = CTL_BADIFACE;
		goto fail;
	}
	if (kgroup_slot(g, &ks->chunk, &ks->idx, err, errlen) == -1) {
		st = CTL_FULL;
		goto fail;
	}
	ks->g = g;
	ks->base_packets = s->packets;
	ks->base_bytes = s->bytes;
	s->path_state = ks;
	if (kgroup_join(g, s, ks->chunk, ks->idx, err, errlen) == -1) {
		s->path_state = NULL;
		st = CTL_BADFILTER;
		goto fail;
	}
	return CTL_OK;
fail:
	if (g != NULL)
		kgroup_put(g);
	pcap_freecode(&ks->prog);
	free(ks);
	return st;
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
	if (kchunk_load(ks->g, ks->chunk, err, errlen) == -1) {
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

	bpfsys_map_get(&ks->g->chunk[ks->chunk].map, ks->idx, &c);
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
	struct kchunk *k = &g->chunk[ks->chunk];
	char err[256];

	/* The last counts, before the program stops counting for S. */
	if (bpfsys_map_fetch(&k->map, err, sizeof(err)) == 0)
		kpath_take(s, now_real());
	k->member[ks->idx] = NULL;
	k->n--;
	g->nmembers--;
	/* A link left empty in the middle still passes packets on. */
	if (g->ev.fd != -1 && (k->n > 0 || ks->chunk + 1 < g->nchunks) &&
	    kchunk_load(g, ks->chunk, err, sizeof(err)) == -1)
		log_warnx("%s: rebuilding the kernel program: %s", g->iface, err);
	kgroup_trim(g);
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
	struct kchunk *k;
	char err[256];
	unsigned c, i;

	LIST_FOREACH(g, &groups, entry)
		for (c = 0; c < g->nchunks; c++) {
			k = &g->chunk[c];
			if (k->n == 0)
				continue;
			if (bpfsys_map_fetch(&k->map, err, sizeof(err)) == -1) {
				log_warnx("%s: reading kernel counters: %s",
				    g->iface, err);
				continue;
			}
			for (i = 0; i < CHUNK_SLOTS; i++)
				if (k->member[i] != NULL &&
				    kpath_take(k->member[i], now))
					sess_publish(k->member[i]);
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
