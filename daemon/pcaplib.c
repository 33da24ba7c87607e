/*
 * pcaplib.c: libpcap, loaded when the daemon starts and never by the
 * client. The functions below carry libpcap's own names and prototypes
 * (the compiler checks them against <pcap/pcap.h>) and call through to the
 * library, so the rest of the daemon is written against libpcap as usual
 * while `capstats poll` does not pay the loader for libpcap and the dozen
 * libraries it brings.
 */
#include <dlfcn.h>
#include <pcap/pcap.h>
#include <stdio.h>

#include "pcaplib.h"

#ifndef PCAP_SONAME
#error "PCAP_SONAME: the file name libpcap is loaded from (see Makefile)"
#endif
_Static_assert(sizeof(PCAP_SONAME) > 1, "PCAP_SONAME is empty: is libpcap's "
    "development package installed?");

/* Every libpcap function the daemon calls: return type, name, parameters, arguments. */
#define PCAP_FUNCS \
	F(int, pcap_activate, (pcap_t *p), (p)) \
	F(pcap_t *, pcap_create, (const char *dev, char *ebuf), (dev, ebuf)) \
	F(int, pcap_compile, (pcap_t *p, struct bpf_program *fp, \
	    const char *str, int optimize, bpf_u_int32 mask), \
	    (p, fp, str, optimize, mask)) \
	F(int, pcap_datalink, (pcap_t *p), (p)) \
	F(const char *, pcap_datalink_val_to_name, (int dlt), (dlt)) \
	F(int, pcap_dispatch, (pcap_t *p, int cnt, pcap_handler cb, \
	    u_char *user), (p, cnt, cb, user)) \
	F(int, pcap_fileno, (pcap_t *p), (p)) \
	F(int, pcap_findalldevs, (pcap_if_t **all, char *ebuf), (all, ebuf)) \
	F(int, pcap_get_selectable_fd, (pcap_t *p), (p)) \
	F(char *, pcap_geterr, (pcap_t *p), (p)) \
	F(pcap_t *, pcap_open_dead, (int dlt, int snaplen), (dlt, snaplen)) \
	F(int, pcap_set_buffer_size, (pcap_t *p, int size), (p, size)) \
	F(int, pcap_set_immediate_mode, (pcap_t *p, int on), (p, on)) \
	F(int, pcap_set_snaplen, (pcap_t *p, int snaplen), (p, snaplen)) \
	F(int, pcap_set_tstamp_precision, (pcap_t *p, int prec), (p, prec)) \
	F(int, pcap_set_datalink, (pcap_t *p, int dlt), (p, dlt)) \
	F(int, pcap_setfilter, (pcap_t *p, struct bpf_program *fp), (p, fp)) \
	F(int, pcap_setnonblock, (pcap_t *p, int on, char *ebuf), \
	    (p, on, ebuf)) \
	F(int, pcap_stats, (pcap_t *p, struct pcap_stat *ps), (p, ps)) \
	V(pcap_close, (pcap_t *p), (p)) \
	V(pcap_freealldevs, (pcap_if_t *all), (all)) \
	V(pcap_freecode, (struct bpf_program *fp), (fp))

#define F(ret, name, params, args)	static ret (*lib_##name) params;
#define V(name, params, args)		static void (*lib_##name) params;
PCAP_FUNCS
#undef F
#undef V

#define F(ret, name, params, args)	ret name params { return lib_##name args; }
#define V(name, params, args)		void name params { lib_##name args; }
PCAP_FUNCS
#undef F
#undef V

int
pcaplib_load(char *err, size_t errlen)
{
	void *h;

	if ((h = dlopen(PCAP_SONAME, RTLD_NOW | RTLD_GLOBAL)) == NULL) {
		snprintf(err, errlen, "libpcap: %s", dlerror());
		return -1;
	}
#define F(ret, name, params, args) \
	if ((lib_##name = (__typeof__(lib_##name))dlsym(h, #name)) == NULL) \
		goto missing;
#define V(name, params, args)		F(void, name, params, args)
	PCAP_FUNCS
#undef F
#undef V
	return 0;
missing:
	snprintf(err, errlen, "libpcap: %s", dlerror());
	dlclose(h);
	return -1;
}
