/*
 * iface.c: interface flags and the default interface. Each answer comes
 * from the kernel or libpcap at the time it is asked.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <net/if.h>

#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "capstats.h"
#include "config.h"
#include "iface.h"

int
iface_flags(const char *name)
{
	struct ifreq ifr;
	int fd, rc;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	memset(&ifr, 0, sizeof(ifr));
	strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
	rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	close(fd);
	return rc == -1 ? -1 : (unsigned short)ifr.ifr_flags;
}

/* tcpdump's pick: the first interface that is up, running and not loopback. */
const char *
iface_default(char *err, size_t errlen)
{
	static char name[CAPSTATS_IFACE_MAX + 1];
	char ebuf[PCAP_ERRBUF_SIZE];
	pcap_if_t *all, *d;

	if (cfg.default_iface != NULL)
		return cfg.default_iface;
	if (pcap_findalldevs(&all, ebuf) == -1) {
		snprintf(err, errlen, "listing interfaces: %s", ebuf);
		return NULL;
	}
	name[0] = '\0';
	for (d = all; d != NULL; d = d->next) {
		if ((d->flags & PCAP_IF_LOOPBACK) || !(d->flags & PCAP_IF_UP) ||
		    !(d->flags & PCAP_IF_RUNNING) || strcmp(d->name, "any") == 0 ||
		    strlen(d->name) > CAPSTATS_IFACE_MAX)
			continue;
		strlcpy(name, d->name, sizeof(name));
		break;
	}
	pcap_freealldevs(all);
	if (name[0] == '\0') {
		snprintf(err, errlen, "no interface is up; name one with "
		    "'interface IFACE' or -i");
		return NULL;
	}
	return name;
}
