/*
 * config.h: what the command line sets. struct options is filled by the
 * client's option parsing for either mode; struct config is the daemon's
 * settings once it has started, read by every layer above this one.
 */
#ifndef CAPSTATS_CONFIG_H
#define CAPSTATS_CONFIG_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

/* Options shared by both modes; filled by client/main.c. */
struct options {
	bool		 daemon;	/* -d */
	bool		 foreground;	/* -f */
	bool		 debug;		/* -D */
	bool		 json;		/* -j */
	int		 units;		/* -H: SI units instead of digit groups */
	const char	*group;		/* -g */
	const char	*iface;		/* -i */
	const char	*sock;		/* -s */
	const char	*shm;		/* -m */
	const char	*statefile;	/* -S */
	unsigned	 max_sessions;	/* -n */
	unsigned	 buffer_kb;	/* -B */
};

/* The daemon's settings after start-up. */
struct config {
	const char	*default_iface;	/* -i, or NULL */
	unsigned	 max_sessions;
	unsigned	 buffer_kb;
	gid_t		 gid;		/* -g, or 0 */
	bool		 has_group;
	const char	*group_name;
	uint64_t	 instance;	/* the segment's, once it exists */
};
extern struct config cfg;

#endif
