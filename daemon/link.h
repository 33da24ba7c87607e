/*
 * link.h: what libpcap does on a link type, which both counting paths
 * must do alike (link.c).
 */
#ifndef CAPSTATS_LINK_H
#define CAPSTATS_LINK_H

#include <stdbool.h>
#include <stdint.h>

struct bpf_program;

struct link {
	int		 dlt;
	bool		 cooked;	/* SOCK_DGRAM, from the network header */
	uint32_t	 hdr_len;	/* the header libpcap builds in front */
	uint32_t	 vlan_len;	/* 4 where libpcap puts VLAN tags back */
};
/* The link types both paths know, or NULL: then only libpcap's own
 * pcap_setfilter() installs a filter. */
const struct link *link_get(int dlt);
/* Move PROG's loads as libpcap does for a cooked socket; -1 when a load
 * reads a header field the kernel does not give (libpcap then filters in
 * user space). */
int link_fix(const struct link *, struct bpf_program *prog);

#endif
