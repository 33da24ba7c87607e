/*
 * iface.h: questions about network interfaces, asked of the kernel or of
 * libpcap when needed; nothing is cached.
 */
#ifndef CAPSTATS_IFACE_H
#define CAPSTATS_IFACE_H

#include <stddef.h>

int iface_flags(const char *name);	/* SIOCGIFFLAGS, or -1 */
/*
 * The interface a session gets when it names none: -i, else the one
 * tcpdump would pick; NULL, with ERR, when there is none.
 */
const char *iface_default(char *err, size_t errlen);

#endif
