/*
 * pcaplib.h: libpcap, which only the daemon uses, loaded at its start
 * (pcaplib.c); until then no pcap_* function may be called.
 */
#ifndef CAPSTATS_PCAPLIB_H
#define CAPSTATS_PCAPLIB_H

#include <stddef.h>

int pcaplib_load(char *err, size_t errlen);

#endif
