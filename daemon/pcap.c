/*
 * pcap.c: the libpcap counting path. One capture handle per session, with
 * the filter in the kernel, a small snapshot length and a ring of frames;
 * each packet costs one callback that adds to the session's tally.
 */
#include <sys/epoll.h>
#include <sys/socket.h>

#include <linux/filter.h>
#include <net/if.h>

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile.h"
#include "config.h"
#include "iface.h"
#include "link.h"
#include "log.h"
#include "path.h"

/*
 * The kernel runs the filter on the whole packet whatever the snapshot
 * length; only the ring's copy is cut, and nothing here reads it. Where
 * libpcap must run the filter in user space too (a link type it alone
 * knows, or a cooked-header field the kernel does not keep), the copy is
 * whole.
 *
 * Otherwise the copy is the shortest that keeps libpcap's lengths right:
 * libpcap puts a VLAN tag back into the copy, and into the length, only
 * when the copy reaches the tag's place (12 bytes into an Ethernet header,
 * 14 into a cooked one). For each packet a session's filter takes, the
 * kernel writes a frame and reads the status of the frame a quarter of the
 * ring ahead, in its receive path; 16 bytes make frames of 96 bytes (112
 * on a cooked capture) where 128 made 208 (224): fewer cache lines to
 * write, and a ring of the same size holds twice as many packets.
 *
 * Immediate mode gives a ring of small fixed frames (TPACKET_V2), each
 * packet readable as soon as it is queued: the ring holds as many packets
 * as fit, however slowly they come. A ring of blocks (TPACKET_V3) hands a
 * whole block to user space on a timer, however few packets it holds, so
 * at low rates a few blocks fill with a packet each and a short stall of
 * the daemon drops packets: handed over every millisecond, for counts that
 * fresh, the 8 blocks of the default ring hold 8 ms of traffic, where its
 * 96-byte frames hold 21,504 packets. Blocks would spare the kernel its
 * look-ahead per packet; frames are worth that. A busy ring is read on a
 * tick instead of per packet (sess.c), which a ring of frames allows
 * without losing them.
 */
#define SNAPLEN		16
#define SNAPLEN_WHOLE	262144		/* libpcap's MAXIMUM_SNAPLEN */

/*
 * A handle counts from the moment its filter is in place: what its ring
 * took before is thrown away first. When a new filter takes over, the old
 * handle and the new one both see the packets of a short overlap, told
 * apart by the time stamps the kernel gave them: the old one counts what
 * was stamped before the new filter was in place, the new one the rest.
 * The cut-off lives only while both rings are read, within one call, so a
 * wall clock that steps at any other time cannot hide packets.
 */
struct pcap_state {
	pcap_t		*p;
	uint64_t	 since_ns;	/* when not 0, packets stamped earlier are not counted */
	uint64_t	 until_ns;	/* nor, when not 0, packets stamped later */
};

static void
count_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct tally *s = (struct tally *)user;
	struct pcap_state *ps = s->state;
	uint64_t ts;

	(void)bytes;
	ts = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
	if (ts < ps->since_ns || (ps->until_ns != 0 && ts >= ps->until_ns))
		return;
	s->packets++;
	s->bytes += h->len;
	s->last_packet_ns = ts;
}

/*
 * Attach PROG to the capture socket ourselves, as libpcap would on this
 * link type (link_fix() moves the loads of a cooked capture the way
 * libpcap's fix_program() does). pcap_setfilter() would also have libpcap
 * check again in user space, on the 16-byte copy, at least the next
 * packet after the change, and a filter that reads further would wrongly
 * reject it; the time fence in count_packet() does that job here.
 */
static enum ctl_status
install(pcap_t *p, struct bpf_program *prog, char *err, size_t errlen)
{
	struct sock_fprog fprog = {
		.len = (unsigned short)prog->bf_len,
		.filter = (struct sock_filter *)prog->bf_insns,
	};
	socklen_t len = 0;
	int fd = pcap_fileno(p);

	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog,
	    sizeof(fprog)) == -1) {
		snprintf(err, errlen, "the kernel did not take the filter (%u "
		    "instructions): %s", prog->bf_len, strerror(errno));
		return CTL_BADFILTER;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &len) == -1 ||
	    len != prog->bf_len) {
		snprintf(err, errlen, "the kernel did not take the filter "
		    "(%u instructions)", prog->bf_len);
		return CTL_BADFILTER;
	}
	return CTL_OK;
}

/* Where libpcap would filter in user space, it does: a whole copy, its own setfilter. */
static enum ctl_status
install_libpcap(pcap_t *p, const struct bpf_program *prog, char *err,
    size_t errlen)
{
	struct bpf_program copy = *prog;

	if (pcap_setfilter(p, &copy) == -1) {
		snprintf(err, errlen, "%s", pcap_geterr(p));
		return CTL_BADFILTER;
	}
	return CTL_OK;
}

/*
 * PROG as this path attaches it for link type DLT, in OUT; false when only
 * libpcap's pcap_setfilter() can install it.
 */
static bool
prepare(const struct bpf_program *prog, int dlt, struct bpf_program *out)
{
	const struct link *l = link_get(dlt);

	out->bf_insns = NULL;
	if (l == NULL || (out->bf_insns = calloc(prog->bf_len ? prog->bf_len : 1,
	    sizeof(*prog->bf_insns))) == NULL)
		return false;
	out->bf_len = prog->bf_len;
	memcpy(out->bf_insns, prog->bf_insns, prog->bf_len * sizeof(*prog->bf_insns));
	if (link_fix(l, out) == -1) {
		pcap_freecode(out);
		return false;
	}
	return true;
}

static pcap_t *
handle_create(struct tally *s, int snaplen, char *err, size_t errlen,
    enum ctl_status *st)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_t *p;
	int rc, flags;

	*st = CTL_BADIFACE;
	if ((flags = iface_flags(s->iface)) != -1 && !(flags & IFF_UP)) {
		snprintf(err, errlen, "%s: interface is down", s->iface);
		return NULL;
	}
	if ((p = pcap_create(s->iface, ebuf)) == NULL) {
		snprintf(err, errlen, "%s: %s", s->iface, ebuf);
		return NULL;
	}
	pcap_set_snaplen(p, snaplen);
	pcap_set_immediate_mode(p, 1);
	pcap_set_buffer_size(p, (int)(cfg.buffer_kb * 1024));
	pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
	if ((rc = pcap_activate(p)) < 0) {
		*st = pcap_activate_error(p, rc, s->iface, err, errlen);
		pcap_close(p);
		return NULL;
	}
	if (rc > 0)
		log_debug("session %s: %s", s->name, pcap_geterr(p));
	pcap_choose_link(p, s->iface);
	if (pcap_setnonblock(p, 1, ebuf) == -1) {
		snprintf(err, errlen, "%s: %s", s->iface, ebuf);
		*st = CTL_INTERNAL;
		pcap_close(p);
		return NULL;
	}
	return p;
}

static void
discard(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	(void)user;
	(void)h;
	(void)bytes;
}

/* Empty the ring of what it took before a filter: take nothing, drop the rest. */
static enum ctl_status
handle_flush(pcap_t *p, char *err, size_t errlen)
{
	struct bpf_insn none = BPF_STMT(BPF_RET | BPF_K, 0);
	struct bpf_program prog = { 1, &none };
	enum ctl_status st;

	if ((st = install(p, &prog, err, errlen)) == CTL_OK)
		while (pcap_dispatch(p, -1, discard, NULL) > 0)
			;
	return st;
}

/*
 * A handle on S's interface counting PROG, compiled for link type DLT,
 * from *SINCE on, the time its filter was in place; its ring is empty of
 * what came before.
 */
static enum ctl_status
handle_open(struct tally *s, const struct bpf_program *prog, int dlt,
    pcap_t **out, uint64_t *since, char *err, size_t errlen)
{
	struct bpf_program ours;
	enum ctl_status st;
	bool own = prepare(prog, dlt, &ours);
	pcap_t *p;

	if ((p = handle_create(s, own ? SNAPLEN : SNAPLEN_WHOLE, err, errlen,
	    &st)) == NULL)
		goto done;
	if (pcap_datalink(p) != dlt) {
		snprintf(err, errlen, "%s: the link type changed while the "
		    "filter compiled", s->iface);
		st = CTL_BADIFACE;
	} else if ((st = handle_flush(p, err, errlen)) == CTL_OK)
		st = own ? install(p, &ours, err, errlen) :
		    install_libpcap(p, prog, err, errlen);
	if (st != CTL_OK) {
		pcap_close(p);
		goto done;
	}
	*since = now_real();
	*out = p;
done:
	if (own)
		pcap_freecode(&ours);
	return st;
}

static enum ctl_status
pcap_path_open(struct tally *s, const struct bpf_program *prog, int dlt,
    char *err, size_t errlen)
{
	struct pcap_state *ps;
	enum ctl_status st;
	uint64_t t;

	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if ((st = handle_open(s, prog, dlt, &ps->p, &t, err, errlen)) !=
	    CTL_OK) {
		free(ps);
		return st;
	}
	s->state = ps;
	s->ev.fd = pcap_get_selectable_fd(ps->p);
	return CTL_OK;
}

/*
 * A new handle takes over from time T, when its filter is in place; the old
 * one counts what arrived before T, then goes, and the new one what it
 * holds from T on. Each packet of the overlap reaches both rings, so
 * nothing is missed and nothing is counted twice; what comes later reaches
 * only the new ring.
 */
static void pcap_path_stats(struct tally *);

static enum ctl_status
pcap_path_refilter(struct tally *s, const struct bpf_program *prog, int dlt,
    char *err, size_t errlen)
{
	struct pcap_state *ps = s->state;
	enum ctl_status st;
	uint64_t t;
	pcap_t *p;

	if ((st = handle_open(s, prog, dlt, &p, &t, err, errlen)) != CTL_OK)
		return st;
	ps->until_ns = t;
	while (pcap_dispatch(ps->p, -1, count_packet, (u_char *)s) > 0)
		;
	pcap_path_stats(s);
	s->drops_base += s->drops;
	s->if_drops_base += s->if_drops;
	s->drops = s->if_drops = 0;
	ev_del(&s->ev);
	pcap_close(ps->p);
	ps->p = p;
	ps->since_ns = t;
	ps->until_ns = 0;
	while (pcap_dispatch(p, -1, count_packet, (u_char *)s) > 0)
		;
	ps->since_ns = 0;
	s->ev.fd = pcap_get_selectable_fd(p);
	if (!s->polled && ev_add(&s->ev, EPOLLIN) == -1) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		return CTL_INTERNAL;
	}
	return CTL_OK;
}

static int
pcap_path_collect(struct tally *s, int budget, char *err, size_t errlen)
{
	struct pcap_state *ps = s->state;
	int n;

	n = pcap_dispatch(ps->p, budget, count_packet, (u_char *)s);
	if (n == PCAP_ERROR) {
		snprintf(err, errlen, "%s: %s", s->iface, pcap_geterr(ps->p));
		return -1;
	}
	return n < 0 ? 0 : n;
}

static void
pcap_path_stats(struct tally *s)
{
	struct pcap_state *ps = s->state;
	struct pcap_stat st;

	if (pcap_stats(ps->p, &st) == 0) {
		s->drops = st.ps_drop;
		s->if_drops = st.ps_ifdrop;
	}
}

static void
pcap_path_close(struct tally *s)
{
	struct pcap_state *ps = s->state;

	pcap_close(ps->p);
	free(ps);
	s->state = NULL;
}

const struct path_ops pcap_path = {
	.name = "pcap",
	.open = pcap_path_open,
	.refilter = pcap_path_refilter,
	.collect = pcap_path_collect,
	.stats = pcap_path_stats,
	.close = pcap_path_close,
};
