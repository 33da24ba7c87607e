# capstats: `make` builds ./capstats and the reader library; `make check` runs
# every test, plain and under AddressSanitizer/UBSan.

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/sbin
LIBDIR	?= $(PREFIX)/lib
INCDIR	?= $(PREFIX)/include
MANDIR	?= $(PREFIX)/share/man
PCDIR	?= $(LIBDIR)/pkgconfig
DESTDIR	?=

CC	?= cc
PKGS	 = libpcap libbsd-overlay
# capstats loads libpcap in daemon mode only (daemon/pcaplib.c), by the
# name the library was built with; the tests and bench programs link it.
PCAP_SONAME ?= $(shell readelf -d "$$($(CC) -print-file-name=libpcap.so)" 2>/dev/null | \
	   sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wformat=2 -Wno-format-nonliteral
CFLAGS	?= -O2 -g
CFLAGS	+= -std=gnu11 $(WARN) $(EXTRA_CFLAGS)
CPPFLAGS += -D_GNU_SOURCE -Ishm -Idaemon -Iclient $(shell pkg-config --cflags $(PKGS))
LDLIBS	+= $(shell pkg-config --libs $(PKGS))
# The client starts once per `poll`, so libbsd (and its libmd) are linked
# into the binary rather than loaded at each start; BSD_STATIC=0 loads them.
BSD_STATIC ?= 1
ifeq ($(BSD_STATIC),1)
BIN_LIBS = -Wl,-Bstatic $(shell pkg-config --libs --static libbsd-overlay) -Wl,-Bdynamic -ldl
else
BIN_LIBS = $(shell pkg-config --libs libbsd-overlay) -ldl
endif
WERROR	?= 1
ifeq ($(WERROR),1)
CFLAGS	+= -Werror
endif

SONAME	 = libcapstats.so.1
SHM_SRC	 = shm/reader.c
DAEMON_SRC = daemon/daemon.c daemon/ctl.c daemon/cmd.c daemon/sess.c daemon/pcap.c \
	     daemon/link.c daemon/iface.c daemon/loop.c daemon/reply.c daemon/config.c \
	     daemon/kpath.c daemon/xlate.c daemon/bpfsys.c daemon/compile.c \
	     daemon/state.c daemon/log.c daemon/proto.c daemon/pcaplib.c \
	     shm/writer.c
CLIENT_SRC = client/main.c client/request.c client/output.c client/local.c
SRC	 = $(CLIENT_SRC) $(DAEMON_SRC) $(SHM_SRC)
HDR	 = $(wildcard shm/*.h daemon/*.h client/*.h)

# Objects and test programs go to $(B); `make B=build/asan SAN=1` is the
# sanitizer build, with its own capstats at $(B)/capstats.
B	?= build
ifeq ($(SAN),1)
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS	+= -fsanitize=address,undefined
endif
OBJ	 = $(SRC:%.c=$(B)/%.o)
# Unit tests: tests/unit/test_*.c. QUICK need no root (a user namespace
# does) and run in seconds: `make check-unit`. The others need root.
UNIT	 = $(patsubst tests/unit/%.c,$(B)/tests/%,$(wildcard tests/unit/test_*.c))
QUICK	 = test_proto test_cmd test_state
UNIT_LIB = tests/unit/check.h tests/unit/doubles.c

all: capstats libcapstats.a $(SONAME) capstats.pc units $(B)/enomem.so

capstats: $(B)/capstats
	cp $(B)/capstats $@

$(B)/capstats: $(OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(OBJ) $(BIN_LIBS)

$(B)/daemon/pcaplib.o: CPPFLAGS += -DPCAP_SONAME='"$(PCAP_SONAME)"'

$(B)/%.o: %.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# A unit test is one file; it includes the modules it tests.
units: $(UNIT) $(B)/tests/test_seqlock_stress_broken
$(B)/tests/%: tests/unit/%.c $(UNIT_LIB) $(HDR) $(SRC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lpthread $(LDLIBS)

# The stress test with a reader that skips its re-check must see torn reads.
$(B)/tests/test_seqlock_stress_broken: tests/unit/test_seqlock_stress.c $(UNIT_LIB) $(HDR) $(SRC)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DCAPSTATS_TEST_BROKEN_READER $(CFLAGS) $(LDFLAGS) \
	    -o $@ tests/unit/test_seqlock_stress.c -lpthread $(LDLIBS)

# Fault injection for the system tests.
$(B)/enomem.so: tests/shim/enomem.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS:-fsanitize%=) -std=gnu11 -D_GNU_SOURCE -fPIC -shared -o $@ $< -ldl

libcapstats.a: $(B)/shm/reader.o
	$(AR) rcs $@ $(B)/shm/reader.o

$(B)/shm/reader.pic.o: shm/reader.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -c -o $@ shm/reader.c

$(SONAME): $(B)/shm/reader.pic.o
	$(CC) $(CFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $(B)/shm/reader.pic.o

capstats.pc: shm/capstats.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' shm/capstats.pc.in > $@

# `make check T=tests/sys/X.sh` runs that system test alone, with both
# builds; `make check-unit` runs the quick unit tests of $(B) alone.
# The programs the system tests run are built first, for both builds: the
# two builds' tests run at the same time and build nothing in the tree.
CHECK_PROGS = kdiff/kdiff bench/offline
check: all $(CHECK_PROGS:%=$(B)/%)
	$(MAKE) B=build/asan SAN=1 build/asan/capstats build/asan/enomem.so asan-units \
	    $(CHECK_PROGS:%=build/asan/%)
	T='$(T)' bash tests/run.sh build build/asan

check-unit: $(QUICK:%=$(B)/tests/%)
	U='$(QUICK)' bash tests/run.sh $(B)

asan-units: $(UNIT) $(B)/tests/test_seqlock_stress_broken

deps:
	sh tests/deps.sh

demo: all
	sh contrib/demo.sh

# `make bench`: up to 64 filters (run.sh), then 64 to 1000 of a family
# (many.sh); BENCH_MANY=0 skips the second.
bench: all $(B)/bench/gen $(B)/bench/ref $(B)/bench/readbench $(B)/bench/offline
	bash tests/bench/run.sh
	if [ "$${BENCH_MANY:-1}" != 0 ]; then bash tests/bench/many.sh; fi

# The systemd unit and the bash completion go where their tools look under
# PREFIX; a distribution overrides SYSTEMDDIR and COMPLETIONDIR. The unit
# and capstats.pc are written here, not copied, so they name this PREFIX
# even when `make` ran with another one.
install uninstall: SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
install uninstall: COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCDIR) \
	    $(DESTDIR)$(PCDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(SYSTEMDDIR) $(DESTDIR)$(COMPLETIONDIR)
	install -m 0755 capstats $(DESTDIR)$(BINDIR)/capstats
	install -m 0644 libcapstats.a $(DESTDIR)$(LIBDIR)/libcapstats.a
	install -m 0755 $(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcapstats.so
	install -m 0644 shm/capstats.h $(DESTDIR)$(INCDIR)/capstats.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCDIR@|$(INCDIR)|' shm/capstats.pc.in > $(DESTDIR)$(PCDIR)/capstats.pc
	chmod 0644 $(DESTDIR)$(PCDIR)/capstats.pc
	install -m 0644 capstats.8 $(DESTDIR)$(MANDIR)/man8/capstats.8
	install -m 0644 shm/capstats-shm.7 $(DESTDIR)$(MANDIR)/man7/capstats-shm.7
	sed -e 's|/usr/local/sbin/capstats|$(BINDIR)/capstats|' \
	    contrib/systemd/capstats.service > $(DESTDIR)$(SYSTEMDDIR)/capstats.service
	chmod 0644 $(DESTDIR)$(SYSTEMDDIR)/capstats.service
	install -m 0644 contrib/bash-completion/capstats $(DESTDIR)$(COMPLETIONDIR)/capstats

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/capstats $(DESTDIR)$(LIBDIR)/libcapstats.a \
	    $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libcapstats.so \
	    $(DESTDIR)$(INCDIR)/capstats.h $(DESTDIR)$(PCDIR)/capstats.pc \
	    $(DESTDIR)$(MANDIR)/man8/capstats.8 $(DESTDIR)$(MANDIR)/man7/capstats-shm.7 \
	    $(DESTDIR)$(SYSTEMDDIR)/capstats.service $(DESTDIR)$(COMPLETIONDIR)/capstats

clean:
	rm -f capstats libcapstats.a $(SONAME) capstats.pc
	rm -rf build

.PHONY: all units asan-units check check-unit deps demo bench install uninstall clean fuzz

# The benchmark's programs (tests/bench/): the traffic generator, the
# reference libpcap readers (N handles; one capture and N filters in user
# space) and the reader-side timings, which link the library as a reader
# would and the writer to build a test segment.
BENCH	 = $(B)/bench/gen $(B)/bench/ref $(B)/bench/offline $(B)/bench/readbench

$(B)/bench/gen: tests/bench/gen.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(B)/bench/ref: tests/bench/ref.c daemon/path.h
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(B)/bench/offline: tests/bench/offline.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(B)/bench/readbench: tests/bench/readbench.c libcapstats.a $(B)/shm/writer.o $(HDR)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/shm/writer.o \
	    libcapstats.a

# Fuzzing, with clang and libFuzzer: `make fuzz` builds the targets into
# build/fuzz/ and runs each for FUZZ_SECONDS over its seeds. New inputs go
# to build/fuzz/corpus/, crashes to build/fuzz/; tests/fuzz/corpus/ is only
# read. tests/sys/fuzz.sh builds the same targets and gives each a short
# run in `make check`. tests/fuzz/TARGET.options holds its max_len.
FUZZ_CC		?= clang
FUZZ_SECONDS	?= 300
FUZZ_TARGETS	 = fuzz_request fuzz_names fuzz_segment
FUZZ_CFLAGS	 = -std=gnu11 $(WARN) $(if $(filter 1,$(WERROR)),-Werror) -g -O1 \
		   -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
		   -fno-sanitize-recover=all

build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(UNIT_LIB) $(HDR) $(SRC)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -o $@ $< $(LDLIBS)

# Writes segment seeds with this tree's writer, beside the committed ones.
build/fuzz/seed_segment: tests/fuzz/seed_segment.c $(HDR) shm/writer.c shm/reader.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

# A target's dictionary: tests/fuzz/TARGET.dict; the request fuzzer's also
# has every command of the table, as `capstats -jh` lists it, alone, before
# its arguments and ending a request.
FUZZ_DICTS	 = $(patsubst tests/fuzz/%,build/fuzz/%,$(wildcard tests/fuzz/*.dict))

build/fuzz/%.dict: tests/fuzz/%.dict
	@mkdir -p $(@D)
	cp $< $@

build/fuzz/fuzz_request.dict: tests/fuzz/fuzz_request.dict $(B)/capstats
	@mkdir -p $(@D)
	{ cat $<; $(B)/capstats -jh | sed -n \
	    's/.*{"command": "\([a-z]*\)".*/"\1"\n"\1 "\n"\1\\x0a"/p'; } >$@

# fuzz_run TARGET[,EXTRA_SEEDS]: an input that takes 10 s fails as a hang;
# the daemon's loop or a reader stalled that long is a bug.
fuzz_run = mkdir -p build/fuzz/corpus/$(1) && build/fuzz/$(1) \
	-max_len=$(shell sed -n 's/^max_len *= *//p' tests/fuzz/$(1).options) \
	$(if $(wildcard tests/fuzz/$(1).dict),-dict=build/fuzz/$(1).dict) \
	-max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	-artifact_prefix=build/fuzz/$(1)- build/fuzz/corpus/$(1) \
	tests/fuzz/corpus/$(1) $(2)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%) $(FUZZ_DICTS) build/fuzz/seed_segment
	rm -rf build/fuzz/seeds && mkdir -p build/fuzz/seeds
	build/fuzz/seed_segment build/fuzz/seeds
	$(call fuzz_run,fuzz_request)
	$(call fuzz_run,fuzz_names)
	$(call fuzz_run,fuzz_segment,build/fuzz/seeds)

# The differential test of the kernel path (tests/sys/kdiff.sh builds and
# runs it): every program through the kernel's classic BPF and through
# xlate, side by side on a veth pair.
$(B)/kdiff/kdiff: tests/kdiff/kdiff.c $(HDR) daemon/xlate.c daemon/bpfsys.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)
