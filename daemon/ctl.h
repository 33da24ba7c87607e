/*
 * ctl.h: the control socket. ctl_init() binds it, locks it against a
 * second daemon and registers with the loop; ctl_shutdown() closes every
 * connection and removes the socket.
 */
#ifndef CAPSTATS_CTL_H
#define CAPSTATS_CTL_H

#include <stddef.h>

int ctl_init(const char *path, char *err, size_t errlen);
void ctl_shutdown(void);

#endif
