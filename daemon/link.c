/*
 * link.c: what counting as libpcap counts needs to know of a link type:
 * whether libpcap captures on it in cooked mode (a SOCK_DGRAM packet
 * socket, the kernel giving each packet from its network header), the
 * header libpcap then builds in front, whether it puts VLAN tags back, and
 * how it moves a filter's loads onto a cooked socket (pcap-linux.c). Pure
 * functions; no system call.
 */
#include <linux/filter.h>

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stddef.h>

#include "link.h"

#define SLL_HDR		16	/* struct sll_header */
#define SLL2_HDR	20	/* struct sll2_header */
#define VLAN_TAG	4

static const struct link links[] = {
	/* dlt		  cooked  hdr_len    vlan_len */
	{ DLT_EN10MB,	  false,  0,	     VLAN_TAG },
	{ DLT_LINUX_SLL,  true,   SLL_HDR,   VLAN_TAG },
	{ DLT_LINUX_SLL2, true,   SLL2_HDR,  0 },
	{ DLT_RAW,	  false,  0,	     0 },
	{ DLT_IPV4,	  false,  0,	     0 },
	{ DLT_IPV6,	  false,  0,	     0 },
};

const struct link *
link_get(int dlt)
{
	size_t i;

	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (links[i].dlt == dlt)
			return &links[i];
	return NULL;
}

/*
 * One load of a filter compiled for a cooked header, for the socket that
 * gives no such header: past the header, the same bytes of the packet;
 * in it, the fields the kernel keeps as ancillary data; -1 for the rest.
 */
static int
fix_load(const struct link *l, struct bpf_insn *in)
{
	static const struct { int dlt; uint32_t at, anc; } fields[] = {
		{ DLT_LINUX_SLL,  0,  SKF_AD_PKTTYPE },
		{ DLT_LINUX_SLL,  14, SKF_AD_PROTOCOL },
		{ DLT_LINUX_SLL2, 0,  SKF_AD_PROTOCOL },
		{ DLT_LINUX_SLL2, 4,  SKF_AD_IFINDEX },
		{ DLT_LINUX_SLL2, 10, SKF_AD_PKTTYPE },
	};
	size_t i;

	if (in->k >= (uint32_t)SKF_AD_OFF)	/* ancillary already */
		return 0;
	if (in->k >= l->hdr_len) {
		in->k -= l->hdr_len;
		return 0;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i].dlt == l->dlt && fields[i].at == in->k) {
			in->k = (uint32_t)SKF_AD_OFF + fields[i].anc;
			return 0;
		}
	return (int32_t)in->k > 0 ? -1 : 0;
}

int
link_fix(const struct link *l, struct bpf_program *prog)
{
	struct bpf_insn *in;
	unsigned i;

	if (!l->cooked)
		return 0;
	for (i = 0; i < prog->bf_len; i++) {
		in = &prog->bf_insns[i];
		if (BPF_CLASS(in->code) != BPF_LD && BPF_CLASS(in->code) != BPF_LDX)
			continue;
		if (BPF_MODE(in->code) != BPF_ABS && BPF_MODE(in->code) != BPF_IND &&
		    BPF_MODE(in->code) != BPF_MSH)
			continue;
		if (fix_load(l, in) == -1)
			return -1;
	}
	return 0;
}
