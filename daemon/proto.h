/*
 * proto.h: the control protocol between `capstats COMMAND` and `capstats -d`,
 * and every limit either side enforces. Both sides include this file; no
 * protocol number or limit is written anywhere else.
 *
 *   client                                        daemon
 *     | connect(/var/run/capstats) ------------->  |  SO_PEERCRED, SO_PEERGROUPS
 *     | <------ "hello" TAB "proto=1" TAB ... LF   |  greeting, or an error line and close
 *     | "show" SP "web" LF ----------------------> |  request: words separated by one SP,
 *     |                                            |  printable ASCII, at most CTL_REQUEST_MAX
 *     |                                            |  bytes with its LF
 *     | <------ "row" TAB "session=web" TAB ... LF |  zero or more rows of key=value fields
 *     | <------ "ok" LF                            |  end of a reply, or
 *     | <------ "error" TAB CODE TAB message LF    |  an error that ends it
 *
 * A connection may carry several requests, answered in order. Keys and
 * values never contain TAB or LF. New keys may appear in any version;
 * readers ignore keys they do not know. Version history:
 *   1  first release.
 */
#ifndef CAPSTATS_PROTO_H
#define CAPSTATS_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "capstats.h"

#define CTL_PROTO_VERSION	1
#define CTL_SOCKET_DEFAULT	"/var/run/capstats"
#define CTL_SOCKET_ENV		"CAPSTATS_SOCKET"
#define CTL_SHM_ENV		"CAPSTATS_SHM"
#define CTL_STATE_DIR		"/var/lib/capstats"
#define CTL_PID_DIR		"/var/run"

#define CTL_REQUEST_MAX		4096	/* one request line, LF included */
#define CTL_FILTER_MAX		2048	/* bytes of filter text */
#define CTL_SESSIONS_DEFAULT	256	/* -n default */
#define CTL_SESSIONS_MAX	4096	/* -n at most */

/*
 * Connections. When the table is full, or a uid has its share, a new
 * client takes the place of the one idle longest among those it competes
 * with. Idle is the time since the client connected or its last request
 * was taken; a client waiting for an answer is never displaced. Root's
 * clients compete with everyone, and the last CTL_CLIENTS_ROOT slots are
 * theirs alone.
 */
#define CTL_CLIENTS_MAX		256	/* connections served at once */
#define CTL_CLIENTS_ROOT	16	/* of them, kept for root */
#define CTL_CLIENTS_UID		(CTL_CLIENTS_MAX / 2)	/* for one other uid */
#define CTL_GRACE_MS		500	/* never displaced before this long... */
#define CTL_IDLE_MS		10000	/* ...dropped after this long */

/*
 * Replies. A row carries at most a filter and 1 KiB of other fields
 * (show's, the longest, takes 900 bytes); one reply is at most a row for
 * every session and its last line. A client whose unread replies pass
 * CTL_REPLY_BUDGET is not answered again until it reads them.
 */
#define CTL_ROW_MAX		(CTL_FILTER_MAX + 1024)
#define CTL_REPLY_MAX		((CTL_SESSIONS_MAX + 1) * CTL_ROW_MAX)
#define CTL_REPLY_BUDGET	(64u << 10)
#define CTL_BUFFER_DEFAULT_KB	2048	/* -B default: capture buffer per session */
#define CTL_BUFFER_MIN_KB	64
#define CTL_BUFFER_MAX_KB	(1u << 20)

/*
 * Reply status codes: append only, never renumber. The code word is what
 * travels on the wire; the client turns every code but OK into exit 1,
 * and BADREQ into exit 2.
 */
#define CTL_STATUSES			\
	X(CTL_OK,		"ok")			\
	X(CTL_BADREQ,		"badreq")		\
	X(CTL_NOSESSION,	"nosession")		\
	X(CTL_EXISTS,		"exists")		\
	X(CTL_BADNAME,		"badname")		\
	X(CTL_BADFILTER,	"badfilter")		\
	X(CTL_BADIFACE,		"badiface")		\
	X(CTL_FULL,		"full")			\
	X(CTL_PERM,		"perm")			\
	X(CTL_NOMEM,		"nomem")			\
	X(CTL_TOOLONG,		"toolong")		\
	X(CTL_INTERNAL,		"internal")		\
	X(CTL_UNSUPPORTED,	"unsupported")	\
	X(CTL_BUSY,		"busy")

enum ctl_status {
#define X(e, word) e,
	CTL_STATUSES
#undef X
	CTL_NSTATUS
};

/*
 * The commands: one row each, in the order of `capstats -h` and capstats(8).
 * Everything about a command but its handler is here: cmd.c dispatches on
 * it, the client parses, checks, prints and explains from it, and the bash
 * completion and the tests read it back from `capstats -jh`. The columns:
 *   name	the word; answered by cmd_NAME, in cmd.c for a SOCKET command
 *		and in client/main.c for a SEGMENT one
 *   via	SOCKET: the daemon answers over the socket; SEGMENT: the
 *		client alone, from the segment
 *   first	the first word after the command: NONE, NAME (a new
 *		session's name) or SESSION (a live session's name)
 *   min, max	words after the command (-1: no upper bound)
 *   print	how the client prints the daemon's reply: ack (nothing, or
 *		with -j the row), list, show; self for a SEGMENT command
 *   usage	its synopsis, as capstats(8) has it
 *   help	what it does, in a few words, as the README has it
 */
#define CTL_COMMANDS							\
	/* name	   via	    first    min max print */			\
	X(new,	   SOCKET,  NAME,    2, -1, ack,			\
	    "new NAME [interface IFACE] "				\
	    "[mode auto|pcap|kernel] filter EXPR...",			\
	    "start counting")						\
	X(modify,  SOCKET,  SESSION, 1, -1, ack,			\
	    "modify NAME EXPR...",					\
	    "swap the filter, counters go on")				\
	X(stop,	   SOCKET,  SESSION, 1,  1, ack,			\
	    "stop NAME",						\
	    "end the session")						\
	X(list,	   SOCKET,  NONE,    0,  0, list,			\
	    "list",							\
	    "one row per session")					\
	X(show,	   SOCKET,  SESSION, 1,  1, show,			\
	    "show NAME",						\
	    "everything about one session")				\
	X(poll,	   SEGMENT, SESSION, 1,  1, self,			\
	    "poll NAME",						\
	    "the counters, once")					\
	X(watch,   SEGMENT, SESSION, 3,  5, self,			\
	    "watch NAME frequency SECONDS [count N]",			\
	    "counters and rates, repeatedly")				\
	X(metrics, SEGMENT, NONE,    0,  0, self,			\
	    "metrics",							\
	    "all sessions in the Prometheus text format")

/* Status word for the wire. */
const char *ctl_status_word(enum ctl_status);
/* Parse a status word; CTL_NSTATUS when unknown. */
enum ctl_status ctl_status_parse(const char *);

/* 1 to CAPSTATS_NAME_MAX characters of A-Za-z0-9._-, as messages say it */
#define CTL_STR_(x)		#x
#define CTL_STR(x)		CTL_STR_(x)
#define CTL_NAME_RULE		"1 to " CTL_STR(CAPSTATS_NAME_MAX) " characters of A-Za-z0-9._-"
bool ctl_valid_name(const char *);
/* 1 to CAPSTATS_IFACE_MAX printable characters, no '/', no space */
bool ctl_valid_iface(const char *);
/* printable ASCII, at most CTL_FILTER_MAX bytes */
bool ctl_valid_filter(const char *);
/* Is every byte of buf[0..len) printable ASCII (0x20..0x7e)? */
bool ctl_printable(const char *buf, size_t len);

#endif
