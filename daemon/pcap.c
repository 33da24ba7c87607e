/*
 * pcap.c: the libpcap counting path. One capture handle per session, with
 * the filter in the kernel, a small snapshot length and a ring of frames;
 * each packet costs one callback that adds to the session's totals.
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

#include "daemon.h"
#include "log.h"

/*
 * The kernel runs the filter on the whole packet whatever the snapshot
 * length; only the ring's copy is cut, and nothing here reads it.
 *
 * Immediate mode gives a ring of small fixed frames (TPACKET_V2), each
 * packet readable as soon as it is queued: the ring holds as many packets
 * as fit, however slowly they come. A ring of blocks (TPACKET_V3) hands a
 * whole block to user space on a timer, however few packets it holds, so
 * at low rates a few blocks fill with a packet each and a short stall of
 * the daemon drops packets. A busy ring is read on a tick instead of per
 * packet (sess.c), which a ring of frames allows without losing them.
 */
#define SNAPLEN		128

struct pcap_state {
	pcap_t		*p;
	uint64_t	 since_ns;	/* packets stamped earlier are not counted */
	uint64_t	 until_ns;	/* nor, when not 0, packets stamped later */
};

static void
count_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct sess *s = (struct sess *)user;
	struct pcap_state *ps = s->path_state;
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
 * Attach PROG to the capture socket ourselves. pcap_setfilter() would also
 * have libpcap check again in user space, on the 128-byte copy, at least
 * the next packet after the change, and a filter that reads further would
 * wrongly reject it; the time fence in count_packet() does that job here.
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
		pcap_freecode(prog);
		return CTL_BADFILTER;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, NULL, &len) == -1 ||
	    len != prog->bf_len) {
		snprintf(err, errlen, "the kernel did not take the filter "
		    "(%u instructions)", prog->bf_len);
		pcap_freecode(prog);
		return CTL_BADFILTER;
	}
	pcap_freecode(prog);
	return CTL_OK;
}

static enum ctl_status
activate_error(pcap_t *p, int rc, const char *iface, char *err, size_t errlen)
{
	const char *why = pcap_geterr(p);

	switch (rc) {
	case PCAP_ERROR_NO_SUCH_DEVICE:
		snprintf(err, errlen, "%s: no such interface", iface);
		return CTL_BADIFACE;
	case PCAP_ERROR_IFACE_NOT_UP:
		snprintf(err, errlen, "%s: interface is down", iface);
		return CTL_BADIFACE;
	case PCAP_ERROR_PERM_DENIED:
		snprintf(err, errlen, "%s: %s", iface, why);
		return CTL_PERM;
	default:
		snprintf(err, errlen, "%s: %s", iface, why);
		return strstr(why, "annot allocate memory") != NULL ?
		    CTL_NOMEM : CTL_BADIFACE;
	}
}

static void pcap_path_stats(struct sess *);

/*
 * A handle on S's interface counting FILTER from *SINCE on: what reached
 * the ring before the filter was in place is stamped earlier.
 */
static enum ctl_status
handle_open(struct sess *s, const char *filter, pcap_t **out, uint64_t *since,
    char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE];
	struct bpf_program prog;
	enum ctl_status st;
	pcap_t *p;
	int rc, flags;

	if ((flags = iface_flags(s->iface)) != -1 && !(flags & IFF_UP)) {
		snprintf(err, errlen, "%s: interface is down", s->iface);
		return CTL_BADIFACE;
	}
	if ((p = pcap_create(s->iface, ebuf)) == NULL) {
		snprintf(err, errlen, "%s: %s", s->iface, ebuf);
		return CTL_BADIFACE;
	}
	pcap_set_snaplen(p, SNAPLEN);
	pcap_set_immediate_mode(p, 1);
	pcap_set_buffer_size(p, (int)(cfg.buffer_kb * 1024));
	pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
	if ((rc = pcap_activate(p)) < 0) {
		st = activate_error(p, rc, s->iface, err, errlen);
		goto fail;
	}
	if (rc > 0)
		log_debug("session %s: %s", s->name, pcap_geterr(p));
	if ((st = filter_compile(p, filter, &prog, err, errlen)) != CTL_OK)
		goto fail;
	if (pcap_setnonblock(p, 1, ebuf) == -1) {
		snprintf(err, errlen, "%s: %s", s->iface, ebuf);
		pcap_freecode(&prog);
		st = CTL_INTERNAL;
		goto fail;
	}
	if ((st = install(p, &prog, err, errlen)) != CTL_OK)
		goto fail;
	*since = now_real();
	*out = p;
	return CTL_OK;
fail:
	pcap_close(p);
	return st;
}

static enum ctl_status
pcap_path_open(struct sess *s, char *err, size_t errlen)
{
	struct pcap_state *ps;
	enum ctl_status st;

	if ((ps = calloc(1, sizeof(*ps))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if ((st = handle_open(s, s->filter, &ps->p, &ps->since_ns, err,
	    errlen)) != CTL_OK) {
		free(ps);
		return st;
	}
	s->path_state = ps;
	s->ev.fd = pcap_get_selectable_fd(ps->p);
	return CTL_OK;
}

static enum ctl_status
pcap_path_check(struct sess *s, const char *filter, char *err, size_t errlen)
{
	struct bpf_program prog;
	enum ctl_status st;
	pcap_t *p;

	(void)s;
	if ((p = pcap_open_dead(DLT_EN10MB, SNAPLEN)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CTL_NOMEM;
	}
	if ((st = filter_compile(p, filter, &prog, err, errlen)) == CTL_OK)
		pcap_freecode(&prog);
	pcap_close(p);
	return st;
}

/*
 * A new handle takes over from time T, when its filter is in place; the old
 * one counts what arrived before T, then goes. Each packet reaches both
 * rings, so nothing is missed and nothing is counted twice.
 */
static enum ctl_status
pcap_path_refilter(struct sess *s, const char *filter, char *err, size_t errlen)
{
	struct pcap_state *ps = s->path_state;
	enum ctl_status st;
	uint64_t t;
	pcap_t *p;

	if ((st = handle_open(s, filter, &p, &t, err, errlen)) != CTL_OK)
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
	s->ev.fd = pcap_get_selectable_fd(p);
	if (!s->polled && ev_add(&s->ev, EPOLLIN) == -1) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		return CTL_INTERNAL;
	}
	return CTL_OK;
}

static int
pcap_path_collect(struct sess *s, int budget, char *err, size_t errlen)
{
	struct pcap_state *ps = s->path_state;
	int n;

	n = pcap_dispatch(ps->p, budget, count_packet, (u_char *)s);
	if (n == PCAP_ERROR) {
		snprintf(err, errlen, "%s: %s", s->iface, pcap_geterr(ps->p));
		return -1;
	}
	return n < 0 ? 0 : n;
}

static void
pcap_path_stats(struct sess *s)
{
	struct pcap_state *ps = s->path_state;
	struct pcap_stat st;

	if (pcap_stats(ps->p, &st) == 0) {
		s->drops = st.ps_drop;
		s->if_drops = st.ps_ifdrop;
	}
}

static void
pcap_path_close(struct sess *s)
{
	struct pcap_state *ps = s->path_state;

	pcap_close(ps->p);
	free(ps);
	s->path_state = NULL;
}

const struct path_ops pcap_path = {
	.name = "pcap",
	.open = pcap_path_open,
	.check = pcap_path_check,
	.refilter = pcap_path_refilter,
	.collect = pcap_path_collect,
	.stats = pcap_path_stats,
	.close = pcap_path_close,
};
