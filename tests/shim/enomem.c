/*
 * enomem.c: an LD_PRELOAD shim for fault tests. While the file named by
 * $CAPSTATS_TEST_ENOMEM exists, the kernel's capture ring cannot be had:
 * setsockopt(PACKET_RX_RING) fails with ENOMEM, as on a host out of memory.
 */
#include <sys/socket.h>

#include <linux/if_packet.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

int setsockopt(int, int, int, const void *, socklen_t);

int
setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	static int (*real)(int, int, int, const void *, socklen_t);
	const char *trigger = getenv("CAPSTATS_TEST_ENOMEM");

	if (level == SOL_PACKET && name == PACKET_RX_RING && trigger != NULL &&
	    access(trigger, F_OK) == 0) {
		errno = ENOMEM;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int, int, int, const void *, socklen_t))
		    dlsym(RTLD_NEXT, "setsockopt");
	return real(fd, level, name, val, len);
}
