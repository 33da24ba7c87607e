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
#include "capstats.h"
#include "iface.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "path.h"
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

/*
 * A link may hold a family (xlate.h): sessions whose filters differ only
 * in one constant, counted with one run of their program and a lookup of
 * the constant, whatever their number; adding or removing one changes a
 * map, not the program. A family's link also counts, one by one, the
 * sessions that left it by a modify, its guests.
 */
#define FAMILY_SLOTS	1024	/* sessions one family link counts */

struct kfamily {
	struct bpf_program	 skel;		/* the first member's program */
	uint8_t			*site;
	int			 members;	/* hash: constant -> counters */
	unsigned		 n;		/* members, guests apart */
	struct xlate_pin	 pin[2];	/* while a member moves */
	size_t			 npins;
};

struct kchunk {
	struct bpfsys_map	 map;		/* its counters; fd -1: none yet */
	unsigned		 n, cap;
	struct tally		**member;	/* by counter index */
	struct kfamily		*fam;
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
	bool			 member;	/* of its link's family */
	uint32_t		 key;		/* ... with this constant */
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
/* Tallies whose counts moved or whose socket failed, for kpath_news(). */
static TAILQ_HEAD(, tally) news = TAILQ_HEAD_INITIALIZER(news);

static void
kpath_tell(struct tally *t)
{
	if (t->in_news)
		return;
	TAILQ_INSERT_TAIL(&news, t, news);
	t->in_news = true;
}

static void
kpath_untell(struct tally *t)
{
	if (!t->in_news)
		return;
	TAILQ_REMOVE(&news, t, news);
	t->in_news = false;
}

struct tally *
kpath_news(void)
{
	struct tally *t;

	if ((t = TAILQ_FIRST(&news)) != NULL)
		kpath_untell(t);
	return t;
}
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
	struct xlate_filter f[CHUNK_SLOTS];	/* a family link has fewer guests */
	struct kchunk *k = &g->chunk[c];
	struct xlate_wire wire;
	struct xlate_prog prog;
	struct kstate *ks;
	size_t n = 0;
	uint32_t i;
	int fd, rc;

	struct xlate_family fam, *fp = NULL;

	for (i = 0; i < k->cap && n < CHUNK_SLOTS; i++) {
		if (k->member[i] == NULL)
			continue;
		ks = k->member[i]->state;
		if (ks->member)
			continue;
		f[n].insns = (const struct sock_filter *)ks->prog.bf_insns;
		f[n].len = ks->prog.bf_len;
		f[n++].index = i;
	}
	if (k->fam != NULL) {
		fam.skel = (const struct sock_filter *)k->fam->skel.bf_insns;
		fam.len = k->fam->skel.bf_len;
		fam.site = k->fam->site;
		fam.members_fd = k->fam->members;
		fam.pins = k->fam->pin;
		fam.npins = k->fam->npins;
		fp = &fam;
	}
	wire.hdr_len = g->link->hdr_len;
	wire.vlan_len = g->link->vlan_len;
	if (xlate_build_chain(f, n, k->map.fd, k->map.slots, &wire, fp,
	    g->progs, c + 1, &prog, err, errlen) == -1)
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

	/* A group whose socket failed only waits for its members to go. */
	LIST_FOREACH(g, &groups, entry)
		if (g->ev.fd != -1 && strcmp(g->iface, iface) == 0)
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
	LIST_INSERT_HEAD(&groups, g, entry);
	if ((g->progs = bpfsys_progs_create(CHUNKS, err, errlen)) == -1 ||
	    kgroup_socket(g, err, errlen) == -1) {
		kgroup_put(g);
		return NULL;
	}
	return g;
}

/* Make link C hold CAP sessions: its counters and its table of them. */
static int
kchunk_make(struct kchunk *k, unsigned cap, char *err, size_t errlen)
{
	if ((k->member = calloc(cap, sizeof(*k->member))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (bpfsys_map_create(&k->map, cap, err, errlen) == -1) {
		free(k->member);
		k->member = NULL;
		k->map.fd = -1;
		return -1;
	}
	k->cap = cap;
	return 0;
}

static void
kfamily_free(struct kfamily *fam)
{
	if (fam == NULL)
		return;
	if (fam->members != -1)
		close(fam->members);
	pcap_freecode(&fam->skel);
	free(fam->site);
	free(fam);
}

static void
kchunk_free(struct kchunk *k)
{
	if (k->map.fd != -1)
		bpfsys_map_close(&k->map);
	k->map.fd = -1;
	free(k->member);
	k->member = NULL;
	k->cap = 0;
	kfamily_free(k->fam);
	k->fam = NULL;
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
		kchunk_free(k);
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
		kchunk_free(&g->chunk[c]);
	if (g->progs != -1)
		close(g->progs);
	loop_free_later(g);
}

/* The socket failed: the interface is gone or down; every member fails. */
static void
kgroup_error(struct evsrc *src, uint32_t events)
{
	struct kgroup *g = (struct kgroup *)src;
	char why[128];
	unsigned c, i;

	(void)events;
	snprintf(why, sizeof(why), "%s: the interface %s", g->iface,
	    if_nametoindex(g->iface) == 0 ? "disappeared" : "went down");
	/* Until its members close, the socket must not wake the loop again. */
	ev_del(&g->ev);
	close(g->ev.fd);
	g->ev.fd = -1;
	for (c = 0; c < g->nchunks; c++)
		for (i = 0; i < g->chunk[c].cap; i++)
			if (g->chunk[c].member[i] != NULL) {
				strlcpy(g->chunk[c].member[i]->failed, why,
				    sizeof(g->chunk[c].member[i]->failed));
				kpath_tell(g->chunk[c].member[i]);
			}
}

/* A free counter of link C, cleared for a new session; its index or -1. */
static int
kchunk_index(struct kchunk *k, char *err, size_t errlen)
{
	uint32_t i;

	for (i = 0; i < k->cap && k->member[i] != NULL; i++)
		;
	if (i == k->cap) {
		snprintf(err, errlen, "no free counter");
		return -1;
	}
	if (bpfsys_map_clear(&k->map, i, err, errlen) == -1)
		return -1;
	return (int)i;
}

/* A link for a new session outside families: its number, or -1. */
static int
kgroup_plain_chunk(struct kgroup *g, char *err, size_t errlen)
{
	uint32_t c;

	for (c = 0; c < CHUNKS; c++) {
		if (g->chunk[c].fam != NULL)
			continue;
		if (g->chunk[c].member == NULL) {
			if (kchunk_make(&g->chunk[c], CHUNK_SLOTS, err,
			    errlen) == -1)
				return -1;
			return (int)c;
		}
		if (g->chunk[c].n < g->chunk[c].cap)
			return (int)c;
	}
	snprintf(err, errlen, "%s: no room for another kernel session",
	    g->iface);
	return -1;
}

/* Put S in link C at index I and load the link; undone on failure. */
static int
kgroup_join(struct kgroup *g, struct tally *s, uint32_t c, uint32_t i,
    char *err, size_t errlen)
{
	struct kchunk *k = &g->chunk[c];

	k->member[i] = s;
	k->n++;
	g->nmembers++;
	if (kchunk_load(g, c, err, errlen) == 0) {
		while (g->nchunks <= c) {	/* a new last link */
			if (g->nchunks < c && kchunk_load(g, g->nchunks, err,
			    errlen) == -1)
				goto undo;
			g->nchunks++;
		}
		return 0;
	}
undo:
	k->member[i] = NULL;
	k->n--;
	g->nmembers--;
	return -1;
}

/* ---- families */

/* List or unlist counter IDX under constant KEY of FAM's map. */
static int
kfamily_list(struct kfamily *fam, uint32_t key, uint32_t idx, bool on,
    char *err, size_t errlen)
{
	struct xlate_members m;
	unsigned i, n = 0;
	int rc;

	if ((rc = bpfsys_elem(fam->members, BPFSYS_GET, key, &m, err,
	    errlen)) == -1)
		return -1;
	if (rc == 1)
		memset(&m, 0xff, sizeof(m));
	for (i = 0; i < XLATE_MEMBERS_MAX; i++)
		if (m.index[i] != XLATE_NO_MEMBER && m.index[i] != idx)
			m.index[n++] = m.index[i];
	if (on) {
		if (n == XLATE_MEMBERS_MAX) {
			snprintf(err, errlen, "%d sessions of one constant "
			    "already", XLATE_MEMBERS_MAX);
			return -1;
		}
		m.index[n++] = (uint16_t)idx;
	}
	for (i = n; i < XLATE_MEMBERS_MAX; i++)
		m.index[i] = XLATE_NO_MEMBER;
	if (n == 0)
		return bpfsys_elem(fam->members, BPFSYS_DEL, key, NULL, err,
		    errlen) == -1 ? -1 : 0;
	return bpfsys_elem(fam->members, BPFSYS_SET, key, &m, err, errlen);
}

/* Whether constant KEY of FAM has room for one more session. */
static bool
kfamily_room(struct kfamily *fam, uint32_t key)
{
	struct xlate_members m;
	char err[128];
	int rc;

	rc = bpfsys_elem(fam->members, BPFSYS_GET, key, &m, err, sizeof(err));
	return rc == 1 || (rc == 0 && m.index[XLATE_MEMBERS_MAX - 1] ==
	    XLATE_NO_MEMBER);
}

/* Add S, whose state KS holds its program, to link C's family under KEY. */
static int
kfamily_add(struct kgroup *g, uint32_t c, struct tally *s, struct kstate *ks,
    uint32_t key, char *err, size_t errlen)
{
	struct kchunk *k = &g->chunk[c];
	int i;

	if (!kfamily_room(k->fam, key)) {
		snprintf(err, errlen, "%d sessions of one constant already",
		    XLATE_MEMBERS_MAX);
		return -1;
	}
	if ((i = kchunk_index(k, err, errlen)) == -1 ||
	    kfamily_list(k->fam, key, (uint32_t)i, true, err, errlen) == -1)
		return -1;
	ks->chunk = c;
	ks->idx = (uint32_t)i;
	ks->member = true;
	ks->key = key;
	k->member[i] = s;
	k->n++;
	k->fam->n++;
	g->nmembers++;
	return 0;
}

/* Take S out of its link's family. */
static void
kfamily_remove(struct kgroup *g, struct kstate *ks)
{
	struct kchunk *k = &g->chunk[ks->chunk];
	char err[256];

	if (kfamily_list(k->fam, ks->key, ks->idx, false, err,
	    sizeof(err)) == -1)
		log_warnx("%s: %s", g->iface, err);
	k->fam->n--;
	ks->member = false;
}

/* The constant of S's program, if it is a member of link C's family. */
static bool
kfamily_fits(const struct kchunk *k, const struct bpf_program *prog,
    uint32_t *key)
{
	return k->fam != NULL && k->fam->skel.bf_len == prog->bf_len &&
	    xlate_family_key((const struct sock_filter *)k->fam->skel.bf_insns,
	    k->fam->site, (const struct sock_filter *)prog->bf_insns,
	    prog->bf_len, key) == 0;
}

/* Join S to a family that has its program: the map changes, not a program. */
static int
kfamily_join(struct kgroup *g, struct tally *s, struct kstate *ks)
{
	char err[256];
	uint32_t c, key;

	for (c = 0; c < g->nchunks; c++) {
		if (g->chunk[c].n == g->chunk[c].cap ||
		    !kfamily_fits(&g->chunk[c], &ks->prog, &key))
			continue;
		if (kfamily_add(g, c, s, ks, key, err, sizeof(err)) == 0)
			return 0;
		log_debug("%s: family link %u: %s", g->iface, c, err);
	}
	return -1;
}

/* A plain session whose program and PROG make the first two of a family. */
static bool
kfamily_partner(struct kgroup *g, const struct bpf_program *prog,
    uint8_t *site)
{
	const struct kstate *o;
	const struct kchunk *k;
	uint32_t c, i;

	for (c = 0; c < g->nchunks; c++) {
		k = &g->chunk[c];
		if (k->fam != NULL)
			continue;
		for (i = 0; i < k->cap; i++) {
			if (k->member[i] == NULL)
				continue;
			o = k->member[i]->state;
			if (o->prog.bf_len == prog->bf_len &&
			    xlate_family((const struct sock_filter *)
			    o->prog.bf_insns, (const struct sock_filter *)
			    prog->bf_insns, prog->bf_len, site) == 0)
				return true;
		}
	}
	return false;
}

/*
 * A new family, when S's program and a plain session's are its first two
 * members: a link of its own, with S its first member (the other stays
 * where it is). 0, or -1 when there is none to make.
 */
static int
kfamily_start(struct kgroup *g, struct tally *s, struct kstate *ks)
{
	struct kfamily *fam;
	struct kchunk *k;
	char err[256] = "";
	uint32_t c, key;

	for (c = 0; c < CHUNKS && g->chunk[c].member != NULL; c++)
		;
	if (c == CHUNKS || (fam = calloc(1, sizeof(*fam))) == NULL)
		return -1;
	fam->members = -1;
	if ((fam->site = calloc(ks->prog.bf_len, 1)) == NULL ||
	    !kfamily_partner(g, &ks->prog, fam->site) ||
	    (fam->skel.bf_insns = calloc(ks->prog.bf_len,
	    sizeof(*ks->prog.bf_insns))) == NULL) {
		kfamily_free(fam);
		return -1;
	}
	fam->skel.bf_len = ks->prog.bf_len;
	memcpy(fam->skel.bf_insns, ks->prog.bf_insns, ks->prog.bf_len *
	    sizeof(*ks->prog.bf_insns));
	k = &g->chunk[c];
	if ((fam->members = bpfsys_hash_create(sizeof(struct xlate_members),
	    FAMILY_SLOTS, err, sizeof(err))) == -1 ||
	    kchunk_make(k, FAMILY_SLOTS, err, sizeof(err)) == -1) {
		kfamily_free(fam);
		goto fail;
	}
	k->fam = fam;
	if (!kfamily_fits(k, &ks->prog, &key) ||
	    kfamily_add(g, c, s, ks, key, err, sizeof(err)) == -1)
		goto fail;
	for (; g->nchunks <= c; g->nchunks++)	/* the links before, then it */
		if (kchunk_load(g, g->nchunks, err, sizeof(err)) == -1)
			break;
	if (g->nchunks > c)
		return 0;
	k->member[ks->idx] = NULL;
	k->n--;
	g->nmembers--;
	ks->member = false;
fail:
	log_debug("%s: no family link: %s", g->iface, err);
	kchunk_free(k);
	kgroup_trim(g);
	return -1;
}

static enum ctl_status
kpath_open(struct tally *s, const struct bpf_program *prog, int dlt, char *err,
    size_t errlen)
{
	struct kstate *ks;
	struct kgroup *g = NULL;
	enum ctl_status st;
	int c, i;

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
	ks->g = g;
	ks->base_packets = s->packets;
	ks->base_bytes = s->bytes;
	s->state = ks;
	if (kfamily_join(g, s, ks) == 0 || kfamily_start(g, s, ks) == 0)
		return CTL_OK;
	st = CTL_FULL;
	if ((c = kgroup_plain_chunk(g, err, errlen)) == -1 ||
	    (i = kchunk_index(&g->chunk[c], err, errlen)) == -1)
		goto fail;
	ks->chunk = (uint32_t)c;
	ks->idx = (uint32_t)i;
	if (kgroup_join(g, s, ks->chunk, ks->idx, err, errlen) == -1) {
		st = CTL_BADFILTER;
		goto fail;
	}
	return CTL_OK;
fail:
	s->state = NULL;
	if (g != NULL)
		kgroup_put(g);
	pcap_freecode(&ks->prog);
	free(ks);
	return st;
}

/* Load S's link with a pin for S (or none), for a move that must not lose a packet. */
static int
kfamily_pin(struct kstate *ks, const struct xlate_pin *pin, char *err,
    size_t errlen)
{
	struct kfamily *fam = ks->g->chunk[ks->chunk].fam;

	fam->npins = 0;
	if (pin != NULL)
		fam->pin[fam->npins++] = *pin;
	return kchunk_load(ks->g, ks->chunk, err, errlen);
}

/*
 * A family member's new filter: listed under its new constant, or, when it
 * is no member any more, counted as a guest of the link. Each step is one
 * atomic change of the map or the link's program, and pins keep the
 * member counting under its old constant until the one that switches.
 */
static int
kfamily_refilter(struct kstate *ks, struct bpf_program *prog, char *err,
    size_t errlen)
{
	struct kchunk *k = &ks->g->chunk[ks->chunk];
	struct xlate_pin pin = { ks->idx, ks->key, false };
	struct bpf_program old = ks->prog;
	uint32_t key;

	if (kfamily_fits(k, prog, &key) && key == ks->key) {
		ks->prog = *prog;	/* the same constant: nothing moves */
		pcap_freecode(&old);
		return 0;
	}
	if (kfamily_fits(k, prog, &key) && kfamily_room(k->fam, key)) {
		if (kfamily_pin(ks, &pin, err, errlen) == -1 ||
		    kfamily_list(k->fam, key, ks->idx, true, err, errlen) == -1)
			goto undo;
		pin.key = key;
		if (kfamily_pin(ks, &pin, err, errlen) == -1) {
			kfamily_list(k->fam, key, ks->idx, false, err, errlen);
			goto undo;
		}
		kfamily_list(k->fam, ks->key, ks->idx, false, err, errlen);
		ks->key = key;
	} else {
		if (k->n - k->fam->n >= CHUNK_SLOTS) {
			snprintf(err, errlen, "its link has no room");
			return -1;
		}
		pin.excluded = true;
		ks->prog = *prog;
		ks->member = false;	/* a guest from this program on */
		if (kfamily_pin(ks, &pin, err, errlen) == -1) {
			ks->prog = old;
			ks->member = true;
			goto undo;
		}
		ks->member = true;
		kfamily_remove(ks->g, ks);
	}
	ks->prog = *prog;
	pcap_freecode(&old);
	kfamily_pin(ks, NULL, err, errlen);
	return 0;
undo:
	kfamily_pin(ks, NULL, err + strlen(err), errlen - strlen(err));
	return -1;
}

static enum ctl_status
kpath_refilter(struct tally *s, const struct bpf_program *in, int dlt,
    char *err, size_t errlen)
{
	struct kstate *ks = s->state;
	struct bpf_program prog, old;
	enum ctl_status st;

	if (dlt != ks->g->link->dlt) {
		snprintf(err, errlen, "%s: the link type changed", s->iface);
		return CTL_UNSUPPORTED;
	}
	if ((st = kpath_prepare(s->iface, in, dlt, &prog, err, errlen)) != CTL_OK)
		return st;
	if (ks->member) {
		if (kfamily_refilter(ks, &prog, err, errlen) == 0)
			return CTL_OK;
		pcap_freecode(&prog);
		return CTL_BADFILTER;
	}
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
kpath_collect(struct tally *s, int budget, char *err, size_t errlen)
{
	(void)s;
	(void)budget;
	(void)err;
	(void)errlen;
	return 0;
}

/* Copy one member's sums from the group's last fetch. */
static bool
kpath_take(struct tally *s, uint64_t now_real_ns)
{
	struct kstate *ks = s->state;
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
kpath_stats(struct tally *s)
{
	(void)s;
}

static void
kpath_close(struct tally *s)
{
	struct kstate *ks = s->state;
	struct kgroup *g = ks->g;
	struct kchunk *k = &g->chunk[ks->chunk];
	bool member = ks->member;
	char err[256];

	k->member[ks->idx] = NULL;
	k->n--;
	g->nmembers--;
	if (member)
		kfamily_remove(g, ks);
	/* A link left empty in the middle still passes packets on. */
	else if (g->ev.fd != -1 && (k->n > 0 || ks->chunk + 1 < g->nchunks) &&
	    kchunk_load(g, ks->chunk, err, sizeof(err)) == -1)
		log_warnx("%s: rebuilding the kernel program: %s", g->iface, err);
	/* The last counts, now that nothing counts for S. */
	if (bpfsys_map_fetch(&k->map, err, sizeof(err)) == 0)
		kpath_take(s, now_real());
	kpath_untell(s);
	kgroup_trim(g);
	kgroup_put(g);
	pcap_freecode(&ks->prog);
	free(ks);
	s->state = NULL;
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

/* Fold every group's counters into its tallies; what moved is news. */
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
			for (i = 0; i < k->cap; i++)
				if (k->member[i] != NULL &&
				    kpath_take(k->member[i], now))
					kpath_tell(k->member[i]);
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
