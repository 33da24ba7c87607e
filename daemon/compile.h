/*
 * compile.h: pcap_compile() in worker processes, so the loop goes on while
 * libpcap's optimizer works; a filter not compiled within the deadline is
 * refused. The filter is compiled on a live handle of the interface, as
 * the capture sees it, or, when DEAD_OK and the interface cannot be
 * opened, on an Ethernet one, which checks only the syntax.
 */
#ifndef CAPSTATS_COMPILE_H
#define CAPSTATS_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

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

void compile_init(void);	/* joins the loop */
/* Queue a compile; DONE is called from the loop, never from here. NULL: no memory. */
struct compile_job *compile_start(const char *iface, const char *filter,
    bool dead_ok, compile_fn *done, void *arg);
void compile_cancel(struct compile_job *);	/* DONE is not called */
void compile_run_queue(void);		/* start what may start */
void compile_tick(uint64_t now);	/* deadlines */
void compile_shutdown(void);

/*
 * The link type to capture with on an activated handle of IFACE: on "any",
 * Linux cooked v2, as tcpdump takes it, when libpcap offers it.
 */
void pcap_choose_link(pcap_t *, const char *iface);
/* The status and message for a failed pcap_activate() that returned RC. */
enum ctl_status pcap_activate_error(pcap_t *, int rc, const char *iface,
    char *err, size_t errlen);

#endif
