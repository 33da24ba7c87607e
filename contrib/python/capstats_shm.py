#!/usr/bin/env python3
"""capstats_shm.py: read the capstats counter segment with the standard
library alone, following the protocol of capstats-shm(7).

It checks the file and the header as libcapstats does and never writes to
the segment. Python has no memory fences: on x86-64 the seqlock reads are
exact; on weakly ordered CPUs (arm64) they are best effort, and exact reads
need libcapstats (through ctypes or cffi).

    capstats_shm.py [-m SHMNAME] poll NAME   one session, as a JSON object
    capstats_shm.py [-m SHMNAME] list        running sessions, a JSON array

The objects carry the same keys and values as `capstats -j poll NAME`.
"""

import argparse
import errno
import mmap
import os
import stat
import struct
import sys
import time

SHM_DIR = "/dev/shm/"
SHM_ENV = "CAPSTATS_SHM"
SHM_DEFAULT = "capstats"
NAME_MAX = 200

MAGIC = b"CAPSTATS"
ABI_MAJOR = 1
ENDIAN_MARK = 0x01020304
HEADER_MIN = 256            # the header fields ABI 1 defines
COUNTERS_STRIDE = 128
META_STRIDE = 512
FIELD_STRIDE = 32
SLOTS_MAX = 65536

SEG_READY, SEG_CLOSED, SEG_SUPERSEDED = 1, 2, 3
STATES = ("free", "running", "error", "stopped")
RUNNING, ERROR, STOPPED = 1, 2, 3

SPINS = 100                 # retries before sleeping
PATIENCE = 0.2              # seconds of retries before "busy"
# The staleness rule of capstats-shm(7), as in capstats.h: the daemon is not
# responding once its heartbeat is older than STALE_BEATS intervals, and
# never sooner than STALE_MIN_NS, since a busy host stalls for a moment.
STALE_BEATS = 3
STALE_MIN_NS = 1000000000

# The immutable start of the header (offsets 0..111), native byte order.
HEADER = struct.Struct("=8sHHIIIQQQIIQIIQIIQIIQ")
HEADER_KEYS = ("magic", "abi_major", "abi_minor", "header_size",
               "endian_mark", "flags", "instance_id", "start_realtime_ns",
               "start_monotonic_ns", "writer_pid", "reserved0",
               "segment_size", "slot_count", "counters_stride",
               "counters_offset", "meta_stride", "reserved1", "meta_offset",
               "field_count", "field_stride", "field_offset")
HEARTBEAT_INTERVAL = struct.Struct("=Q")    # at 152

# Word indexes of the mutable header fields.
Q_HEARTBEAT_NS = 136 // 8
I_STATE = 128 // 4
I_HIGH_WATER = 200 // 4

# A counters block after its seq: session_id .. update_ns, state, mode.
COUNTERS = struct.Struct("=7QII")
# A meta block after its seq, up to the end of the filter text.
META = struct.Struct("=QIIIIQQQ8x64s16s96s16x256s")


class ShmError(Exception):
    """A reason to give up, worded for the user."""


class Stale(ShmError):
    """The heartbeat stopped: the daemon may only be slow. Stay attached."""


def stale_limit_ns(interval_ns):
    """How old a heartbeat may be, for a daemon beating every INTERVAL_NS."""
    return max(STALE_BEATS * interval_ns, STALE_MIN_NS)


def seg_path(name):
    """NAME as for shm_open(3); None means $CAPSTATS_SHM, else capstats."""
    if name is None:
        name = os.environ.get(SHM_ENV) or SHM_DEFAULT
    if name.startswith("/"):
        name = name[1:]
    if (not name or len(name) > NAME_MAX or "/" in name
            or name in (".", "..")):
        raise ShmError('bad shared memory name "%s"' % name)
    return SHM_DIR + name


def text(raw, what):
    """A NUL-terminated text field; refuse one that is not terminated."""
    end = raw.find(b"\0")
    if end < 0:
        raise ShmError("malformed description (%s not terminated)" % what)
    return raw[:end]


def json_str(raw):
    """The bytes of RAW as a JSON string, escaped as the C client does."""
    out = ['"']
    for c in raw:
        if c in (0x22, 0x5c):
            out.append("\\" + chr(c))
        elif c < 0x20 or c >= 0x7f:
            out.append("\\u%04x" % c)
        else:
            out.append(chr(c))
    out.append('"')
    return "".join(out)


class Backoff:
    """Spin, then nap, until PATIENCE seconds are spent."""

    def __init__(self):
        self.tries = 0
        self.since = None
        self.nap = 0.00005

    def again(self):
        self.tries += 1
        if self.tries <= SPINS:
            return True
        now = time.monotonic()
        if self.since is None:
            self.since = now
        if now - self.since >= PATIENCE:
            return False
        time.sleep(self.nap)
        self.nap = min(self.nap * 2, 0.001)
        return True


class Segment:
    """A read-only mapping of the segment, checked before any use."""

    def __init__(self, name=None):
        self.path = seg_path(name)
        flags = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
                 | os.O_CLOEXEC)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            raise ShmError("daemon not running (no segment %s)" % self.path)
        except PermissionError:
            raise ShmError("%s: permission denied" % self.path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise ShmError("%s is a symbolic link: refused" % self.path)
            raise ShmError("open %s: %s" % (self.path, e.strerror))
        try:
            st = os.fstat(fd)
            self.check_file(st)
            self.mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED,
                                mmap.PROT_READ)
        finally:
            os.close(fd)
        self.dev, self.ino = st.st_dev, st.st_ino
        view = memoryview(self.mm)
        self.q = view[:len(view) // 8 * 8].cast("Q")
        self.i = view[:len(view) // 4 * 4].cast("I")
        self.check_header(len(self.mm))

    def check_file(self, st):
        """Only root can have written a file that passes these."""
        if not stat.S_ISREG(st.st_mode):
            raise ShmError("%s is not a regular file: refused" % self.path)
        if st.st_uid != 0:
            raise ShmError("%s is owned by uid %d, not root: refused"
                           % (self.path, st.st_uid))
        if st.st_mode & 0o022:
            raise ShmError("%s has mode %04o, writable by others: refused"
                           % (self.path, stat.S_IMODE(st.st_mode)))
        if st.st_nlink != 1:
            raise ShmError("%s has %d links, not 1: refused"
                           % (self.path, st.st_nlink))
        if st.st_size < HEADER_MIN:
            raise ShmError("%s: size %d is not that of a segment"
                           % (self.path, st.st_size))

    def check_header(self, size):
        state = self.i[I_STATE]
        h = dict(zip(HEADER_KEYS, HEADER.unpack_from(self.mm, 0)))
        h["heartbeat_interval_ns"], = HEARTBEAT_INTERVAL.unpack_from(
            self.mm, 152)
        if h["magic"] != MAGIC:
            raise ShmError("%s is not a capstats segment (bad magic)"
                           % self.path)
        if h["endian_mark"] != ENDIAN_MARK:
            raise ShmError("%s: byte order mark 0x%08x is not this host's"
                           % (self.path, h["endian_mark"]))
        if h["abi_major"] != ABI_MAJOR:
            raise ShmError("%s: segment ABI %d.%d, this reader knows %d.x"
                           % (self.path, h["abi_major"], h["abi_minor"],
                              ABI_MAJOR))
        self.check_layout(h, size)
        if state == SEG_CLOSED:
            raise ShmError("daemon not running (segment %s is closed)"
                           % self.path)
        if state == SEG_SUPERSEDED:
            raise ShmError("daemon restarting (segment %s superseded): "
                           "open again" % self.path)
        if state != SEG_READY:
            raise ShmError("%s: segment state %d is not ready"
                           % (self.path, state))
        self.h = h

    def check_layout(self, h, size):
        seg = h["segment_size"]
        if (h["header_size"] < HEADER_MIN or seg < h["header_size"]
                or seg > size):
            raise ShmError("%s: header size %d or segment size %d does not "
                           "fit the file (%d bytes)" % (
                               self.path, h["header_size"], seg, size))
        if not 0 < h["slot_count"] <= SLOTS_MAX:
            raise ShmError("%s: slot count %d out of range"
                           % (self.path, h["slot_count"]))
        if (h["counters_stride"] < COUNTERS_STRIDE
                or h["meta_stride"] < META_STRIDE
                or h["field_stride"] < FIELD_STRIDE):
            raise ShmError("%s: block sizes smaller than ABI %d defines"
                           % (self.path, ABI_MAJOR))

        def fits(low, off, count, stride):
            return (off % 8 == 0 and stride % 8 == 0 and low <= off <= seg
                    and count * stride <= seg - off)

        if not (fits(h["header_size"], h["counters_offset"], h["slot_count"],
                     h["counters_stride"])
                and fits(h["header_size"], h["meta_offset"], h["slot_count"],
                         h["meta_stride"])
                and fits(HEADER_MIN, h["field_offset"], h["field_count"],
                         h["field_stride"])):
            raise ShmError("%s: a table is misaligned or lies outside the "
                           "segment" % self.path)

    def check(self):
        """Is the daemon still behind this mapping, and alive? Stale when
        its heartbeat stopped (keep the mapping and check again), another
        ShmError when the segment is closed, replaced or removed."""
        state = self.i[I_STATE]
        if state == SEG_CLOSED:
            raise ShmError("the daemon closed %s" % self.path)
        if state != SEG_READY:
            raise ShmError("a new daemon replaced %s" % self.path)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise ShmError("%s was removed" % self.path)
        if (st.st_dev, st.st_ino) != (self.dev, self.ino):
            raise ShmError("%s is now another file" % self.path)
        # Negative when the daemon beat after our clock was read.
        age = time.monotonic_ns() - self.q[Q_HEARTBEAT_NS]
        if age > stale_limit_ns(self.h["heartbeat_interval_ns"]):
            raise Stale("no heartbeat for %d ms" % (age // 1000000))

    def stable(self, off, length):
        """LENGTH bytes after the seq word at OFF, copied consistently."""
        wait = Backoff()
        while True:
            s1 = self.q[off // 8]
            if not s1 & 1:
                blob = self.mm[off + 8:off + 8 + length]
                if self.q[off // 8] == s1:
                    return blob
            if not wait.again():
                raise ShmError("no stable read within %d ms "
                               "(writer stalled?)" % (PATIENCE * 1000))

    def high_water(self):
        return min(self.i[I_HIGH_WATER], self.h["slot_count"])

    def meta(self, slot):
        off = self.h["meta_offset"] + slot * self.h["meta_stride"]
        (sid, state, mode, flags, _, created, modified, gen, name, iface,
         error, filt) = META.unpack(self.stable(off, META.size))
        if state > STOPPED:
            raise ShmError("slot %d: malformed description" % slot)
        return {"slot": slot, "session_id": sid, "state": state,
                "name": text(name, "name"), "iface": text(iface, "iface"),
                "error": text(error, "error"), "filter": text(filt, "filter")}

    def counters(self, slot, session_id):
        off = self.h["counters_offset"] + slot * self.h["counters_stride"]
        (sid, packets, nbytes, drops, if_drops, last_packet, update, state,
         mode) = COUNTERS.unpack(self.stable(off, COUNTERS.size))
        if sid == 0 or sid != session_id or state == 0:
            return None
        if state > STOPPED:
            raise ShmError("slot %d: state %d unknown" % (slot, state))
        return {"packets": packets, "bytes": nbytes, "drops": drops,
                "if_drops": if_drops, "last_packet": last_packet,
                "state": state, "session_id": sid}

    def sessions(self):
        """The descriptions of running and failed sessions, by slot."""
        for slot in range(self.high_water()):
            try:
                m = self.meta(slot)
            except ShmError:
                continue
            if m["state"] in (RUNNING, ERROR):
                yield m

    def close(self):
        self.q.release()
        self.i.release()
        self.mm.close()


def session_json(seg, m, c):
    """One session as `capstats -j poll` prints it."""
    last = "null" if c["last_packet"] == 0 else str(c["last_packet"])
    return ('{"session": %s, "interface": %s, "state": "%s", "packets": %d, '
            '"bytes": %d, "drops": %d, "if_drops": %d, "last_packet": %s, '
            '"session_id": %d, "instance": "%016x"}' % (
                json_str(m["name"]), json_str(m["iface"]),
                STATES[c["state"]], c["packets"], c["bytes"], c["drops"],
                c["if_drops"], last, c["session_id"],
                seg.h["instance_id"]))


def cmd_poll(seg, name):
    want = name.encode("latin-1", "replace")
    for m in seg.sessions():
        if m["name"] == want:
            c = seg.counters(m["slot"], m["session_id"])
            if c is not None:
                print(session_json(seg, m, c))
                return 0
            break
    print("capstats: no session named %s" % name, file=sys.stderr)
    return 1


def cmd_list(seg):
    out = []
    for m in seg.sessions():
        c = seg.counters(m["slot"], m["session_id"])
        # Counters that already say STOPPED: the session is ending.
        if c is not None and c["state"] != STOPPED:
            out.append(session_json(seg, m, c))
    print("[" + ", ".join(out) + "]")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="capstats_shm.py",
        description="Read capstats counters from shared memory.")
    ap.add_argument("-m", dest="shm", metavar="SHMNAME",
                    help="segment name (default $%s or %s)"
                    % (SHM_ENV, SHM_DEFAULT))
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("poll", help="one session's counters")
    p.add_argument("name")
    sub.add_parser("list", help="every running session's counters")
    args = ap.parse_args(argv)
    try:
        seg = Segment(args.shm)
    except ShmError as e:
        print("capstats: %s" % e, file=sys.stderr)
        return 1
    try:
        seg.check()
    except ShmError as e:
        print("capstats: daemon not %s (%s)" % (
            "responding" if isinstance(e, Stale) else "running", e),
            file=sys.stderr)
        seg.close()
        return 1
    try:
        if args.command == "poll":
            return cmd_poll(seg, args.name)
        return cmd_list(seg)
    except ShmError as e:
        print("capstats: %s" % e, file=sys.stderr)
        return 1
    finally:
        seg.close()


if __name__ == "__main__":
    sys.exit(main())
