"""tests/bench/many.py: the tables of the many-filter part of `make bench`,
from what many.sh collects. `header` and `row` print the traffic table as it
grows; `final` prints the summary and the targets and writes many.tsv and
many.md. It measures nothing and never fails on a missed target.

Raw traffic row (tab-separated): FAMILY N RATE CONTENDER SENT ARRIVED NS
EXPECTED COUNTED DROPS EXACT CPU_NS BUSY SOFTIRQ TOTAL GEN_USER_US
GEN_SYS_US BPF_NS BPF_RUNS. RATE 0 is the most the generator can do;
CPU_NS is the counting processes' CPU time; BUSY, SOFTIRQ and TOTAL are
USER_HZ ticks over all CPUs (/proc/stat); BPF_NS and BPF_RUNS are the
kernel's run time and runs of the kernel path's programs, 0 unless the
contender is kernel+bpfstats.
Facts (tab-separated): share FAMILY N TEXT; create FAMILY N MS; skipped
FAMILY N CONTENDER; create-control FAMILY N MS; mem PATH N RSS0_KB RSS1_KB
KMEM0 KMEM1; ring pcap N KB; shutdown PATH N MS; restore PATH N MS. Timings: readbench's
lines, KEY COUNT MEDIAN_NS P99_NS MEAN_NS.
"""
import os
import sys

HZ = os.sysconf("SC_CLK_TCK")

# The targets the issue states.
HOST_RATE_MIN = 500000		# 1000 host filters counted exactly, packets/s
COST_RATIO_MAX = 4.0		# cost per packet, N = 1000 over N = 64
KERNEL_SESSION_BYTES_MAX = 4096
NEW_P99_NS_MAX = 20e6
LIST_NS_MAX = 50e6
SHUTDOWN_MS_MAX = 1000
RESTORE_MS_MAX = 5000
FAMILIES = ("host", "port", "vlan", "mixed")	# the cost target's
BIG, ANCHOR = 1000, 64

CELL = "{:>9} {:>8} {:>7} {:>8} {:>8} {:>5}"


class Run:
    """One contender's run at one point, raw and derived."""

    def __init__(self, f):
        self.family, self.n, self.rate = f[0], int(f[1]), int(f[2])
        self.contender = f[3]
        (self.sent, self.arrived, self.ns, self.expected, self.counted,
         self.drops, self.exact, self.cpu_ns, self.busy, self.softirq,
         self.total, self.gen_user_us, self.gen_sys_us, self.bpf_ns,
         self.bpf_runs) = [int(x) for x in f[4:19]]
        secs = self.ns / 1e9
        self.offered_pps = self.sent / secs
        self.arrived_pps = self.arrived / secs
        self.share = self.counted / self.expected if self.expected else 1.0
        self.cpu_ns_pkt = self.cpu_ns / self.arrived if self.arrived else 0.0
        self.sys_pct = 100 * self.busy / self.total if self.total else 0.0
        other = (self.busy / HZ - (self.gen_user_us + self.gen_sys_us) / 1e6
                 - self.cpu_ns / 1e9)
        self.other_pct = 100 * max(other, 0) / (self.total / HZ) if self.total else 0.0
        self.lossfree = self.exact == 1 and self.drops == 0
        self.bpf_ns_pkt = self.bpf_ns / self.bpf_runs if self.bpf_runs else None

    def counted_text(self):
        text = "%.1f%%" % (100 * self.share)
        if self.exact:
            return "=" + text
        return text + ("+d" if self.drops else "!")


def load_runs(path):
    with open(path) as f:
        return [Run(line.rstrip("\n").split("\t")) for line in f if line.strip()]


def load_facts(path):
    out = {}
    with open(path) as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            if len(v) >= 3:
                out[tuple(v[:3])] = v[3:]
    return out


def load_timings(path):
    out = {}
    with open(path) as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            if len(v) == 5:
                out[v[0]] = [float(x) if x != "-" else None for x in v[1:]]
    return out


def rate_label(rate):
    return "max" if rate == 0 else "%dk" % (rate // 1000)


def kpps(pps):
    return "%.0fk" % (pps / 1000)


def ns_text(v):
    if v is None:
        return "-"
    if v < 10000:
        return "%.0f ns" % v
    if v < 1e6:
        return "%.0f µs" % (v / 1e3)
    return "%.1f ms" % (v / 1e6)


LEGEND = (
    "kernel: capstats' eBPF path (mode kernel), counting in the receive softirq "
    "on the generator's CPU: that work shows in sys%, not in cpu; "
    "kernel+bpfstats: the same at one rate with the kernel's eBPF run-time "
    "statistics on, for the run time of its programs (bpf)",
    "offline: one libpcap capture of everything, every filter run by "
    "pcap_offline_filter in user space; tcpdump: one per filter (N <= 64)",
    "counted: share of the expected packets counted (=: every filter exact; "
    "+d: with drops reported; !: lost without a drop reported)",
    "cpu: CPU ns of the counting process(es) per packet that arrived; "
    "sys%: all CPUs busy (100 = every CPU)",
)


def header():
    print("\n".join(LEGEND))
    print("{:<6} {:>4} {:>5} {:<16} | ".format("family", "N", "rate", "contender") +
          CELL.format("pkt/s", "counted", "drops", "cpu", "bpf", "sys%"))


def row_text(r):
    return "{:<6} {:>4} {:>5} {:<16} | ".format(
        r.family, r.n, rate_label(r.rate), r.contender) + CELL.format(
        kpps(r.offered_pps) + ("" if r.arrived == r.sent else "~"),
        r.counted_text(), r.drops, "%.0f" % r.cpu_ns_pkt,
        "-" if r.bpf_ns_pkt is None else "%.0f" % r.bpf_ns_pkt, "%.0f" % r.sys_pct)


def cmd_row(path):
    print(row_text(load_runs(path)[-1]))


# ---------------------------------------------------------------- summary

class Result:
    """One contender on one family and N, over its rates."""

    def __init__(self, runs, family, n, contender):
        self.family, self.n, self.contender = family, n, contender
        self.runs = [r for r in runs if (r.family, r.n, r.contender) ==
                     (family, n, contender)]
        self.lossfree, self.limited, self.failed = 0.0, False, False
        for r in self.runs:
            if not r.lossfree:
                # what never arrived, nobody could count: the limit is
                # the generator's and the kernel's, not the contender's
                self.limited = r.arrived < r.sent
                self.failed = not self.limited
                break
            self.lossfree = r.arrived_pps
            self.limited = r.rate == 0 or r.arrived_pps < 0.9 * r.rate
        clean = [r for r in self.runs if r.lossfree] or self.runs
        arrived = sum(r.arrived for r in clean)
        self.cpu = sum(r.cpu_ns for r in clean) / arrived if arrived else None
        bpf = [r for r in runs if (r.family, r.n, r.contender) ==
               (family, n, contender + "+bpfstats") and r.bpf_runs]
        self.bpf = (sum(r.bpf_ns for r in bpf) / sum(r.bpf_runs for r in bpf)
                    if bpf else None)

    def lossfree_text(self):
        if not self.runs:
            return "-"
        if self.lossfree == 0:
            return "none"
        return ("≥" if self.limited and not self.failed else "") + kpps(self.lossfree)

    def cost(self):
        """ns per packet: the eBPF run time for the kernel path, the
        processes' CPU for the others."""
        return self.bpf if self.contender == "kernel" else self.cpu


def results(runs):
    keys = []
    for r in runs:
        c = r.contender.replace("+bpfstats", "")
        if (r.family, r.n, c) not in keys:
            keys.append((r.family, r.n, c))
    return {k: Result(runs, *k) for k in keys}


def per_filter(v, n):
    return "-" if v is None else "%.1f" % (v / n)


def summary_rows(res, facts):
    rows = []
    for (fam, n, c), x in res.items():
        share = facts.get(("share", fam, str(n)), [""])[0]
        rows.append((fam, n, c, x.lossfree_text(),
                     "-" if x.cpu is None else "%.0f" % x.cpu,
                     "-" if x.bpf is None else "%.0f" % x.bpf,
                     per_filter(x.cost(), n), share))
    return rows


def ratios(res):
    """{(family, contender): (cost at BIG / cost at ANCHOR, big, anchor)}"""
    out = {}
    for (fam, n, c), x in res.items():
        if n != BIG:
            continue
        a = res.get((fam, ANCHOR, c))
        if a is not None and a.cost() and x.cost():
            out[(fam, c)] = (x.cost() / a.cost(), x.cost(), a.cost())
    return out


def per_session(facts, path):
    for (key, p, n), v in facts.items():
        if key == "mem" and p == path:
            rss = (int(v[1]) - int(v[0])) * 1024 / int(n)
            kmem = (int(v[3]) - int(v[2])) / int(n)
            return int(n), rss, kmem
    return None


def fact_ms(facts, key, path):
    for (k, p, n), v in facts.items():
        if k == key and p == path:
            return int(n), int(v[0])
    return None


def targets(res, facts, tm):
    out = []

    def verdict(ok, text):
        out.append(("PASS" if ok else "MISS") + ": " + text)

    def unmeasured(text):
        out.append("n/a: " + text + " (not measured in this run)")

    k = res.get(("host", BIG, "kernel"))
    text = "%d host filters counted exactly at >= %dk packets/s on the kernel path" % (
        BIG, HOST_RATE_MIN // 1000)
    if k is None or not k.runs:
        unmeasured(text)
    else:
        verdict(k.lossfree >= HOST_RATE_MIN * 0.98, "%s (loss-free %s)" % (
            text, k.lossfree_text()))
    rt = ratios(res)
    for fam in FAMILIES:
        text = "kernel path, %s: cost per packet at N=%d below %.0fx N=%d's" % (
            fam, BIG, COST_RATIO_MAX, ANCHOR)
        if (fam, "kernel") not in rt:
            unmeasured(text)
            continue
        ratio, big, anchor = rt[(fam, "kernel")]
        verdict(ratio < COST_RATIO_MAX, "%s (eBPF run time %.0f vs %.0f ns: %.2fx)" % (
            text, big, anchor, ratio))
    m = per_session(facts, "kernel")
    if m is None:
        unmeasured("memory per kernel-path session <= 4 KiB")
    else:
        verdict(m[1] <= KERNEL_SESSION_BYTES_MAX,
                "memory per kernel-path session <= 4 KiB (daemon RSS %.0f bytes, "
                "kernel %.0f bytes, at %d sessions)" % (m[1], m[2], m[0]))
    for key, limit, text in (("new", NEW_P99_NS_MAX, "`new` p99 <= 20 ms"),):
        if key in tm:
            verdict(tm[key][2] <= limit, "%s at %d sessions (p99 %s, median %s, %d news)" % (
                text, BIG, ns_text(tm[key][2]), ns_text(tm[key][1]), tm[key][0]))
    for key in ("list", "metrics"):
        if key in tm:
            verdict(tm[key][1] <= LIST_NS_MAX,
                    "`%s` <= 50 ms at %d sessions, whole process (median %s, p99 %s)" % (
                        key, BIG, ns_text(tm[key][1]), ns_text(tm[key][2])))
    s = fact_ms(facts, "shutdown", "kernel")
    if s:
        verdict(s[1] <= SHUTDOWN_MS_MAX, "shutdown with %d sessions <= 1 s (%d ms)" % s)
    s = fact_ms(facts, "restore", "kernel")
    if s:
        verdict(s[1] <= RESTORE_MS_MAX, "restore of %d sessions, all running on the "
                "kernel path, <= 5 s (%d ms)" % s)
    return out


def control_rows(facts, tm):
    """(what, measured) of the control side."""
    rows = []
    c = fact_ms(facts, "create-control", "host")
    if c:
        rows.append(("%d `new` pipelined over 4 connections" % c[0], "%d ms" % c[1]))
    names = {"new": "`capstats new`, whole process, with %d sessions" % BIG,
             "new-member": "... of them, `host 10.21.0.x`, of the host family",
             "new-other": "... of them, lines of filters.txt",
             "stop": "`capstats stop`, whole process, with %d sessions" % BIG,
             "rtt-new": "`new` as a request on an open connection (the daemon's share)",
             "rtt-stop": "`stop` as a request on an open connection",
             "true": "`/bin/true`, whole process, at the same time",
             "list": "`capstats list`, whole process, %d sessions" % BIG,
             "metrics": "`capstats metrics`, whole process, %d sessions" % BIG}
    for key, what in names.items():
        if key in tm:
            rows.append((what, "median %s, p99 %s (%d runs)" % (
                ns_text(tm[key][1]), ns_text(tm[key][2]), tm[key][0])))
    for key, path, what in (
            ("shutdown", "kernel", "shutdown, SIGTERM to exit, %d kernel-path sessions"),
            ("restore", "kernel", "restore at start, until all %d run on the kernel path"),
            ("shutdown", "pcap", "shutdown, SIGTERM to exit, %d libpcap-path sessions")):
        s = fact_ms(facts, key, path)
        if s:
            rows.append((what % s[0], "%d ms" % s[1]))
    m = per_session(facts, "kernel")
    if m:
        rows.append(("memory per kernel-path session, %d sessions" % m[0],
                     "daemon RSS %.0f B, kernel (eBPF maps, programs) %.0f B" % (m[1], m[2])))
    m = per_session(facts, "pcap")
    if m:
        ring = fact_ms(facts, "ring", "pcap")
        rows.append(("memory per libpcap-path session, %d sessions" % m[0],
                     "daemon RSS %.0f KiB, its mapped ring of %s KiB included" % (
                         m[1] / 1024, ring[1] if ring else "-B")))
    return rows


# ---------------------------------------------------------------- outputs

SUMMARY_HEAD = ("family", "N", "contender", "loss-free", "cpu ns/pkt", "bpf ns/pkt",
                "ns/pkt/filter", "traffic per cycle")


def cmd_final(raw, facts_path, timings_path, machine_path, quiet_path, outdir, elapsed_ms):
    runs = load_runs(raw) if os.path.getsize(raw) else []
    facts = load_facts(facts_path)
    tm = load_timings(timings_path)
    with open(machine_path) as f:
        machine = f.read().strip().split("\t", 1)[-1]
    with open(quiet_path) as f:
        quiet = f.read().strip()
    res = results(runs)
    rows = summary_rows(res, facts)
    crow = control_rows(facts, tm)
    verdicts = targets(res, facts, tm)
    skipped = sorted({(k[1], k[2]) for k in facts if k[0] == "skipped"})
    busy = [r for r in runs if r.other_pct > 10]
    notes = []
    if skipped:
        notes.append("N x tcpdump was left out above N=%s (%s): that many "
                     "processes do not fit the machine" % (
                         64, ", ".join("%s N=%s" % s for s in skipped)))
    if quiet:
        notes.append(quiet.replace("note: ", ""))
    if busy:
        notes.append("in %d of %d runs more than 10%% of the machine (up to %.0f%%) was busy "
                     "with neither the generator nor the counting processes: kernel threads "
                     "(ksoftirqd), or other work (builds, tests) disturbing those numbers" % (
                         len(busy), len(runs), max(r.other_pct for r in busy)))
    fmt = "{:<6} {:>4} {:<8} {:>10} {:>10} {:>10} {:>13}  {}"
    print("\n== many filters: summary")
    print(fmt.format(*SUMMARY_HEAD))
    for r in rows:
        print(fmt.format(*r))
    print("loss-free: the highest rate counted exactly with no drop, every rate "
          "below it too (≥: the generator's limit); ns/pkt/filter: bpf for kernel, "
          "else cpu, over N")
    for (fam, c), (ratio, big, anchor) in sorted(ratios(res).items()):
        print("%s %s: cost per packet N=%d / N=%d = %.0f / %.0f ns = %.2fx" % (
            fam, c, BIG, ANCHOR, big, anchor, ratio))
    print("\n== control side")
    for what, v in crow:
        print("{:<64} {}".format(what, v))
    for n in notes:
        print("\nnote: " + n)
    print("\n== many filters: targets")
    print("\n".join(verdicts))
    elapsed_s = int(elapsed_ms) / 1000
    write_tsv(os.path.join(outdir, "many.tsv"), runs, facts, tm, verdicts, machine)
    write_md(os.path.join(outdir, "many.md"), runs, rows, crow, res, verdicts, notes,
             machine, elapsed_s)
    print("\nwall time %.0f s; results in %s/many.tsv and many.md" % (elapsed_s, outdir))


def write_tsv(path, runs, facts, tm, verdicts, machine):
    cols = ("family n rate contender sent arrived seconds offered_pps arrived_pps "
            "expected counted drops exact cpu_ns_per_pkt bpf_ns_per_pkt sys_pct "
            "other_pct").split()
    with open(path, "w") as f:
        f.write("machine\t%s\n" % machine)
        f.write("#traffic\t" + "\t".join(cols) + "\n")
        for r in runs:
            v = (r.family, r.n, r.rate, r.contender, r.sent, r.arrived,
                 "%.3f" % (r.ns / 1e9), "%.0f" % r.offered_pps, "%.0f" % r.arrived_pps,
                 r.expected, r.counted, r.drops, r.exact, "%.1f" % r.cpu_ns_pkt,
                 "-" if r.bpf_ns_pkt is None else "%.1f" % r.bpf_ns_pkt,
                 "%.1f" % r.sys_pct, "%.1f" % r.other_pct)
            f.write("traffic\t" + "\t".join(str(x) for x in v) + "\n")
        f.write("#fact\tkey\tpath_or_family\tn\tvalues\n")
        for k, v in facts.items():
            f.write("fact\t%s\t%s\n" % ("\t".join(k), "\t".join(v)))
        f.write("#timing\tkey\tcount\tmedian_ns\tp99_ns\tmean_ns\n")
        for k, v in tm.items():
            f.write("timing\t%s\t%s\n" % (k, "\t".join("-" if x is None else "%.0f" % x
                                                       for x in v)))
        f.write("#target\tresult\tdescription\n")
        for v in verdicts:
            res, text = v.split(": ", 1)
            f.write("target\t%s\t%s\n" % (res, text))


def write_md(path, runs, rows, crow, res, verdicts, notes, machine, elapsed_s):
    with open(path, "w") as f:
        f.write("Many filters, measured by `make bench` (tests/bench/many.sh) on %s; "
                "%.0f s.\n\n" % (machine, elapsed_s))
        f.write("".join("- %s\n" % x for x in LEGEND) + "\n")
        f.write("| family | N | rate | contender | pkt/s | counted | drops | cpu ns/pkt "
                "| bpf ns/pkt | sys |\n|---|--:|--:|---|--:|--:|--:|--:|--:|--:|\n")
        for r in runs:
            f.write("| %s | %d | %s | %s | %s | %s | %d | %.0f | %s | %.0f%% |\n" % (
                r.family, r.n, rate_label(r.rate), r.contender,
                kpps(r.offered_pps) + ("" if r.arrived == r.sent else "~"),
                r.counted_text(), r.drops, r.cpu_ns_pkt,
                "-" if r.bpf_ns_pkt is None else "%.0f" % r.bpf_ns_pkt, r.sys_pct))
        f.write("\n| " + " | ".join(SUMMARY_HEAD) + " |\n|---|--:|---|--:|--:|--:|--:|---|\n")
        for r in rows:
            f.write("| " + " | ".join(str(x) for x in r) + " |\n")
        rt = ratios(res)
        if rt:
            f.write("\n| family | contender | ns/pkt at N=%d | at N=%d | ratio |\n"
                    "|---|---|--:|--:|--:|\n" % (BIG, ANCHOR))
            for (fam, c), (ratio, big, anchor) in sorted(rt.items()):
                f.write("| %s | %s | %.0f | %.0f | %.2fx |\n" % (fam, c, big, anchor, ratio))
        f.write("\n| control side | measured |\n|---|---|\n")
        for what, v in crow:
            f.write("| %s | %s |\n" % (what, v))
        f.write("".join("\nNote: %s\n" % n for n in notes))
        f.write("\n" + "\n".join("- " + v for v in verdicts) + "\n")


def main(argv):
    if len(argv) == 2 and argv[1] == "header":
        header()
    elif len(argv) == 3 and argv[1] == "row":
        cmd_row(argv[2])
    elif len(argv) == 9 and argv[1] == "final":
        cmd_final(*argv[2:])
    else:
        sys.exit("usage: many.py header | row RAW | final RAW FACTS TIMINGS MACHINE "
                 "QUIET OUTDIR ELAPSED_MS")


if __name__ == "__main__":
    main(sys.argv)
