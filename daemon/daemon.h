/*
 * daemon.h: `capstats -d`, and the map of the daemon's files.
 *
 * The daemon is built in layers. A file may include the headers of, and
 * call, only its own module and the layers below it; the files of one
 * layer do not use each other. tests/sys/layers.sh reads the table below
 * and fails when an #include or a call points up or sideways.
 *
 * LAYERS (bottom first)
 *	segment		shm/writer.c shm/clock.h shm/capstats.h
 *	base		log.c proto.c config.c
 *	kernel		xlate.c pcaplib.c
 *	bpf		bpfsys.c
 *	iface		iface.c link.c
 *	loop		loop.c reply.c
 *	compile		compile.c
 *	tally		path.h
 *	paths		pcap.c kpath.c
 *	sessions	sess.c
 *	state		state.c
 *	commands	cmd.c
 *	control		ctl.c
 *	daemon		daemon.c
 * END
 *
 * segment: the published counters (shm/). base: logging, the protocol's
 * words and limits, the command line's settings. kernel and bpf: filter
 * translation, libpcap loading, bpf(2). iface: interface and link-type
 * facts. loop: epoll sources, clocks, registered periodic work, and the
 * replies being built. compile: filters compiled in children. tally:
 * what both counting paths do and keep for a session. paths: the two ways
 * of counting, which report to sessions only by return values and
 * kpath_news(). sessions: their life and the segment. state: the file
 * that survives a restart, saved by the commands. commands: one handler
 * per request. control: the socket. daemon: start-up and the loop's run.
 */
#ifndef CAPSTATS_DAEMON_H
#define CAPSTATS_DAEMON_H

#include "config.h"

int daemon_main(const struct options *);

#endif
