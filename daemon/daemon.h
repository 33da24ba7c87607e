/*
 * daemon.h: what the daemon's modules share: options, the event loop's
 * sources, sessions and their counting paths, the reply buffer.
 */
#ifndef CAPSTATS_DAEMON_H
#define CAPSTATS_DAEMON_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capstats.h"
#include "proto.h"

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

int daemon_main(const struct options *);

/* Load libpcap, which only the daemon uses (pcaplib.c). */
int pcaplib_load(char *err, size_t errlen);

/* An event source in the loop: called with the epoll events that fired. */
struct evsrc {
	int	  fd;
	void	(*fn)(struct evsrc *, uint32_t events);
};

int ev_add(struct evsrc *, uint32_t events);
int ev_mod(struct evsrc *, uint32_t events);
void ev_del(struct evsrc *);
/*
 * Free P when the loop's turn is over. An object with an event source
 * that ends during a turn sets the source's fd to -1 and goes here: a
 * later event of the same batch may still name it, and is then skipped.
 */
void loop_free_later(void *p);
uint64_t now_mono(void);	/* CLOCK_MONOTONIC ns */
uint64_t now_real(void);	/* CLOCK_REALTIME ns */

/* The daemon's settings after start-up. */
struct config {
	const char	*default_iface;	/* -i, or NULL */
	unsigned	 max_sessions;
	unsigned	 buffer_kb;
	gid_t		 gid;		/* -g, or 0 */
	bool		 has_group;
	const char	*group_name;
	uint64_t	 instance;
};
extern struct config cfg;

/* A reply being built for one request. */
struct reply {
	char		*buf;
	size_t		 len, cap;
	bool		 failed;	/* out of memory: the client is dropped */
	bool		 later;		/* the handler answers later */
	uint64_t	 client;	/* who asked: for ctl_resume() */
};

void rep_row(struct reply *);
void rep_str(struct reply *, const char *key, const char *val);
void rep_u64(struct reply *, const char *key, uint64_t val);
void rep_ok(struct reply *);
enum ctl_status rep_err(struct reply *, enum ctl_status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* cmd.c: answer one request line (without its LF). */
void cmd_exec(char *line, struct reply *);

/* ctl.c: the control socket. */
int ctl_init(const char *path, char *err, size_t errlen);
void ctl_tick(uint64_t now);
bool ctl_any_pending(void);	/* a client has a request read, not answered */
void ctl_run_pending(void);
void ctl_shutdown(void);
/*
 * A handler that set r->later finishes its reply here: ctl_resume() gives
 * the reply of CLIENT, or NULL when that client has gone; ctl_resumed()
 * sends it, and the client's next request is read.
 */
struct reply *ctl_resume(uint64_t client);
void ctl_resumed(uint64_t client);

/*
 * compile.c: pcap_compile() in a child, so the loop goes on while
 * libpcap's optimizer works; a filter not compiled within the deadline is
 * refused. The filter is compiled on a live handle of the interface, as
 * the capture sees it, or, when DEAD_OK and the interface cannot be
 * opened, on an Ethernet one, which checks only the syntax.
 */
struct bpf_program;
typedef struct pcap pcap_t;
struct compiled {
	enum ctl_status			 status;
	int				 dlt;	/* the link type compiled for */
	const struct bpf_program	*prog;	/* when status is CTL_OK */
	char				 err[256];
};
typedef void compile_fn(void *arg, struct compiled *);
struct compile_job;
/* Queue a compile; DONE is called from the loop, never from here. NULL: no memory. */
struct compile_job *compile_start(const char *iface, const char *filter,
    bool dead_ok, compile_fn *done, void *arg);
void compile_cancel(struct compile_job *);	/* DONE is not called */
void compile_run_queue(void);
void compile_tick(uint64_t now);		/* deadlines */
void compile_shutdown(void);
/*
 * The link type to capture with on an activated handle of IFACE: on "any",
 * Linux cooked v2, as tcpdump takes it, when libpcap offers it.
 */
void pcap_choose_link(pcap_t *, const char *iface);
/* The status and message for a failed pcap_activate() that returned RC. */
enum ctl_status pcap_activate_error(pcap_t *, int rc, const char *iface,
    char *err, size_t errlen);

/* link.c: what libpcap does on a link type (see there). */
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

/* A session and the path that counts for it. */
struct sess;

struct path_ops {
	const char	*name;
	/* Start counting PROG, compiled for link type DLT, on S->iface. */
	enum ctl_status	(*open)(struct sess *, const struct bpf_program *prog,
			    int dlt, char *err, size_t errlen);
	/* Count PROG from now on; counters go on. */
	enum ctl_status	(*refilter)(struct sess *, const struct bpf_program *prog,
			    int dlt, char *err, size_t errlen);
	/* Count what arrived, at most BUDGET packets; -1 with err on failure. */
	int		(*collect)(struct sess *, int budget, char *err, size_t errlen);
	/* Refresh S->drops and S->if_drops. */
	void		(*stats)(struct sess *);
	void		(*close)(struct sess *);
};

extern const struct path_ops pcap_path;
extern const struct path_ops kernel_path;

/* kpath.c: the kernel path's shared state. */
bool kpath_available(char *why, size_t whylen);
void kpath_fold(void);		/* fold the kernel's counters into the sessions */
void kpath_shutdown(void);	/* stop counting on every interface at once */

/* daemon.c: fold the kernel path's counters every few ms, or stop. */
void fold_timer(bool on);

/*
 * A session whose packets come faster than one per POLL_NS is read every
 * POLL_NS (sess_poll_tick) instead of woken per packet, until POLL_IDLE
 * reads in a row find nothing; poll_timer runs that tick while any session
 * needs it. An empty read costs a system call, a wake-up several.
 */
#define POLL_NS		(1000000ull)
#define POLL_IDLE	8
void poll_timer(bool on);

/* The counting path a session asks for. */
enum sess_mode {
	SESS_AUTO,	/* the kernel's when the filter translates, else libpcap's */
	SESS_PCAP,
	SESS_KERNEL
};
const char *sess_mode_word(enum sess_mode);
int sess_mode_parse(const char *);	/* -1 when unknown */

/*
 * Who waits for a new or modify that was accepted: DONE is called once,
 * from the loop, when it ends; S is NULL when there is no session.
 */
typedef void sess_done_fn(uint64_t client, struct sess *s, enum ctl_status,
    const char *err);
struct sess_waiter {
	sess_done_fn	*done;
	uint64_t	 client;
};

struct sess {
	struct evsrc		 ev;		/* the path's selectable fd */
	TAILQ_ENTRY(sess)	 entry;
	char			 name[CAPSTATS_NAME_MAX + 1];
	char			 iface[CAPSTATS_IFACE_MAX + 1];
	char			*filter;
	char			 error[256];
	uint32_t		 slot;
	uint64_t		 session_id;
	enum capstats_state	 state;
	enum capstats_mode	 mode;		/* the path counting now */
	enum sess_mode		 want;		/* the path asked for */
	uint32_t		 flags;		/* CAPSTATS_F_MODE_* */
	char			 mode_why[200];	/* why this path */
	const struct path_ops	*path;
	void			*path_state;
	bool			 pending;	/* the last collect hit its budget */
	bool			 polled;	/* read on the poll tick, not woken */
	unsigned		 idle;		/* empty reads on the tick in a row */
	TAILQ_ENTRY(sess)	 poll_entry;
	uint64_t		 woken_ns;	/* monotonic: the last wake-up */
	uint64_t		 created_ns, modified_ns;	/* realtime */
	uint64_t		 retry_at;	/* monotonic: next reopen attempt */
	uint64_t		 retry_ns;	/* the wait after the next failure */
	struct compile_job	*job;		/* a compile in flight for S */
	int			 op;		/* what it is for (sess.c) */
	char			*next_filter;	/* modify: the filter compiling */
	struct sess_waiter	 waiter;	/* who waits for the op's end */
	/* Totals over every open of the path. */
	uint64_t		 packets, bytes, last_packet_ns;
	uint64_t		 drops, if_drops;	/* current open */
	uint64_t		 drops_base, if_drops_base;	/* earlier opens */
};

TAILQ_HEAD(sess_list, sess);
extern struct sess_list sessions;

struct sess *sess_find(const char *name);	/* a session that started */
bool sess_name_taken(const char *name);		/* ... or is starting */
/*
 * Start a session: its filter compiles in the background, then the
 * session counts and DONE hears of it. CTL_OK when under way, or an error
 * now, when DONE is not called.
 */
enum ctl_status sess_new(const char *name, const char *iface,
    enum sess_mode want, const char *filter, const struct sess_waiter *,
    char *err, size_t errlen);
/* A session from the state file: listed at once, counting once it can. */
enum ctl_status sess_restore(const char *name, const char *iface,
    enum sess_mode want, const char *filter, char *err, size_t errlen);
/* Swap the filter once the new one compiled; as sess_new for DONE. */
enum ctl_status sess_modify(struct sess *, const char *filter,
    const struct sess_waiter *, char *err, size_t errlen);
void sess_stop(struct sess *);
void sess_fail(struct sess *, const char *why);
void sess_publish(struct sess *);
void sess_tick(uint64_t now, bool stats);
void sess_run_pending(void);
void sess_poll_tick(void);
bool sess_any_pending(void);
void sess_shutdown(void);
int sess_init(const char *shmname, uint32_t slots, char *err, size_t errlen);
uint64_t sess_total_drops(const struct sess *);
uint64_t sess_total_if_drops(const struct sess *);
const char *sess_state_word(enum capstats_state);
const char *sess_default_iface(char *err, size_t errlen);
int iface_flags(const char *name);	/* SIOCGIFFLAGS, or -1 */


/* state.c: the sessions that survive a restart. */
void state_init(const char *path);
int state_save(void);
void state_restore(void);

#endif
