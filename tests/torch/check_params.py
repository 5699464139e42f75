#!/usr/bin/python3
"""Check a .cnn network's weight names, shapes, dtypes, parameter total and MACs against PyTorch.

    /usr/bin/python3 tests/torch/check_params.py --cnnc build/cnnc --net resnet18 --file nets/resnet18.cnn
    /usr/bin/python3 tests/torch/check_params.py --cnnc build/cnnc --net lenet5 lrn_net=tests/torch/lrn_net.cnn
    /usr/bin/python3 tests/torch/check_params.py --dump --net resnet18      # reference lines only

Runs `cnnc FILE --emit=params` (one `NAME DTYPE [d0,d1,...]` line per state_dict entry) and
`cnnc FILE --summary` (`Total params: N`, `MACs per image: N (X M)`, optional `BN buffers: N`) and
compares with reference_models.build(NET):
  - same state_dict names in the same order, same shapes, same dtypes (every difference printed,
    with both sides);
  - Total params == sum(p.numel() for p in model.parameters()) == REFERENCE.md's figure where listed;
  - MACs per image == the Conv2d/Linear hook count exactly (and the "(X M)" figure rounds it);
  - BN buffers (when cnnc prints that line) == running mean + var elements.
Several nets in one run (--net A B=FILE ...) are checked one after another in one process, which
imports PyTorch once (38 processes spent about 75 s of the suite on that import alone).
Exit 0 only if every check of every net passes, 1 otherwise (including cnnc failing or printing no
lines), 2 on bad usage.
"""

import argparse
import difflib
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models as R  # noqa: E402

LINE_RE = re.compile(r"^(\S+) ([A-Za-z0-9]+) \[((?:\d+(?:,\d+)*)?)\]$")
TOTAL_RE = re.compile(r"^\s*Total params:\s*([\d,]+)\s*$", re.M)
MACS_RE = re.compile(r"^\s*MACs per image:\s*([\d,]+)(?:\s*\(\s*([\d,.]+)\s*M\s*\))?\s*$", re.M)
BNBUF_RE = re.compile(r"^\s*BN buffers:\s*([\d,]+)\s*$", re.M)
# The "(X M)" MACs figure has two decimals: half a unit of its last place (0.005 M), plus float slack.
MACS_M_TOL = 0.0051


def fmt(n):
    return "{:,}".format(n)


def fmt_shape(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


class Report:
    def __init__(self):
        self.errors = 0
        self.counts = {}

    def fail(self, kind, msg):
        self.errors += 1
        self.counts[kind] = self.counts.get(kind, 0) + 1
        print("  %-9s %s" % (kind.upper() + ":", msg))


def run_cnnc(cnnc, args, timeout, rep, what):
    cmd = [cnnc] + args
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except FileNotFoundError:
        rep.fail("cnnc", "%s: cannot run %s (not found)" % (what, cnnc))
        return None
    except PermissionError:
        rep.fail("cnnc", "%s: cannot run %s (permission denied)" % (what, cnnc))
        return None
    except subprocess.TimeoutExpired:
        rep.fail("cnnc", "%s: `%s` timed out after %ss" % (what, " ".join(cmd), timeout))
        return None
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    if p.returncode != 0:
        how = ("was killed by signal %d" % -p.returncode) if p.returncode < 0 else ("exited with status %d" % p.returncode)
        rep.fail("cnnc", "%s: `%s` %s" % (what, " ".join(cmd), how))
        for line in (err.strip() or out.strip()).splitlines()[:30]:
            print("            | " + line)
        return None
    return out


def parse_params(text, rep):
    """cnnc --emit=params stdout -> [(name, dtype, [dims])]; malformed lines are errors."""
    entries = []
    for i, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        m = LINE_RE.match(line)
        if not m:
            rep.fail("format", "--emit=params line %d is not `NAME DTYPE [d0,d1,...]`: %r" % (i, line))
            continue
        dims = [int(d) for d in m.group(3).split(",")] if m.group(3) else []
        entries.append((m.group(1), m.group(2), dims))
    return entries


def compare_entries(ref, got, rep):
    ref_names = [e[0] for e in ref]
    got_names = [e[0] for e in got]
    ref_map = {e[0]: e for e in ref}
    got_map = {}
    got_pos = {}
    for i, e in enumerate(got):
        if e[0] in got_map:
            rep.fail("duplicate", "%s appears more than once (lines %d and %d)" % (e[0], got_pos[e[0]] + 1, i + 1))
            continue
        got_map[e[0]] = e
        got_pos[e[0]] = i
    ref_pos = {n: i for i, n in enumerate(ref_names)}

    for i, n in enumerate(ref_names):
        if n not in got_map:
            _, dt, sh = ref_map[n]
            rep.fail("missing", "#%d %s %s %s  (reference has it, cnnc does not)" % (i, n, dt, fmt_shape(sh)))
    for i, e in enumerate(got):
        if e[0] not in ref_map and got_pos.get(e[0]) == i:
            hint = difflib.get_close_matches(e[0], [n for n in ref_names if n not in got_map], 1, 0.6)
            rep.fail("extra", "#%d %s %s %s  (cnnc has it, reference does not%s)" % (
                i, e[0], e[1], fmt_shape(e[2]), "; reference has unmatched %s" % hint[0] if hint else ""))

    for n in ref_names:
        if n not in got_map:
            continue
        _, rdt, rsh = ref_map[n]
        got_map[n] = (n, got_map[n][1], list(got_map[n][2]))
        ref_map[n] = (n, rdt, list(rsh))
        _, gdt, gsh = got_map[n]
        if list(rsh) != list(gsh):
            rep.fail("shape", "%s: reference %s, cnnc %s" % (n, fmt_shape(rsh), fmt_shape(gsh)))
        if rdt != gdt:
            rep.fail("dtype", "%s: reference %s, cnnc %s" % (n, rdt, gdt))

    # Order: of the names both sides have, the ones outside a longest common subsequence are out of place.
    ref_common = [n for n in ref_names if n in got_map]
    got_common = [e[0] for i, e in enumerate(got) if e[0] in ref_map and got_pos[e[0]] == i]
    if ref_common != got_common:
        sm = difflib.SequenceMatcher(None, ref_common, got_common, autojunk=False)
        in_lcs = set()
        for a, b, size in sm.get_matching_blocks():
            in_lcs.update(ref_common[a:a + size])
        for n in got_common:
            if n not in in_lcs:
                rep.fail("order", "%s is at cnnc position #%d, reference position #%d" % (n, got_pos[n], ref_pos[n]))
    return sum(1 for n in ref_names if n in got_map and got_map[n][1:] == ref_map[n][1:])


def check_summary(text, net, ref_params, ref_bn, ref_macs, got_entries, rep):
    exp = R.EXPECTED.get(net, {})
    m = TOTAL_RE.search(text)
    got_params = None
    if not m:
        rep.fail("summary", "no `Total params: N` line in --summary output")
    else:
        got_params = int(m.group(1).replace(",", ""))
        if got_params != ref_params:
            rep.fail("params", "Total params: cnnc %s, reference sum(p.numel()) %s (diff %+d)" % (
                fmt(got_params), fmt(ref_params), got_params - ref_params))
    if "params" in exp and exp["params"] != ref_params:
        rep.fail("params", "reference model has %s params but REFERENCE.md lists %s for %s" % (
            fmt(ref_params), fmt(exp["params"]), net))
    if got_entries:
        # The emitted lines must add up to the same total (f32 entries except BN running statistics).
        emitted = 0
        for n, dt, sh in got_entries:
            if n.endswith(("running_mean", "running_var", "num_batches_tracked")):
                continue
            k = 1
            for d in sh:
                k *= d
            emitted += k
        if got_params is not None and emitted != got_params:
            rep.fail("params", "--emit=params entries (without BN buffers) add up to %s but --summary says %s" % (
                fmt(emitted), fmt(got_params)))

    m = MACS_RE.search(text)
    got_macs = None
    if not m:
        rep.fail("summary", "no `MACs per image: N (X M)` line in --summary output")
    else:
        got_macs = int(m.group(1).replace(",", ""))
        if got_macs != ref_macs:
            rep.fail("macs", "MACs per image: cnnc %s, reference hooks %s (diff %+d)" % (
                fmt(got_macs), fmt(ref_macs), got_macs - ref_macs))
        if m.group(2) is None:
            rep.fail("summary", "MACs line lacks the `(X M)` figure: %r" % m.group(0).strip())
        else:
            mm = float(m.group(2).replace(",", ""))
            if abs(mm - got_macs / 1e6) > MACS_M_TOL:
                rep.fail("macs", "MACs line says %s M but %s MACs is %.2f M" % (m.group(2), fmt(got_macs), got_macs / 1e6))
    if "macs_m" in exp and abs(ref_macs / 1e6 - exp["macs_m"]) > MACS_M_TOL:
        rep.fail("macs", "reference hooks count %.2f M MACs but REFERENCE.md lists %.2f M for %s" % (
            ref_macs / 1e6, exp["macs_m"], net))

    m = BNBUF_RE.search(text)
    got_bn = None
    if m:
        got_bn = int(m.group(1).replace(",", ""))
        if got_bn != ref_bn:
            rep.fail("params", "BN buffers: cnnc %s, reference running mean+var %s" % (fmt(got_bn), fmt(ref_bn)))
    if "bn_buffers" in exp and exp["bn_buffers"] != ref_bn:
        rep.fail("params", "reference model has %s BN buffer elements but REFERENCE.md lists %s" % (
            fmt(ref_bn), fmt(exp["bn_buffers"])))
    return got_params, got_macs, got_bn


def reference(net):
    """The PyTorch reference's figures: (state_dict entries, parameters, BN buffer elements, MACs per image)."""
    model = R.build(net)
    return (R.state_entries(model), R.param_count(model), R.bn_buffer_count(model),
            R.count_macs(model, R.input_shape(net)))


def check_net(cnnc, net, cnnc_file, extra, timeout):
    """One net's checks; prints its lines and a PASS/FAIL summary line; True if every check passed."""
    t0 = time.time()
    ref, ref_params, ref_bn, ref_macs = reference(net)

    print("check_params %s: %s vs PyTorch reference (%d state_dict entries)" % (net, cnnc_file, len(ref)))
    rep = Report()
    matched = 0
    got = []
    out = run_cnnc(cnnc, [cnnc_file, "--emit=params"] + extra, timeout, rep, "--emit=params")
    if out is not None:
        got = parse_params(out, rep)
        if not got:
            rep.fail("empty", "cnnc --emit=params printed no entries (reference has %d)" % len(ref))
        else:
            matched = compare_entries(ref, got, rep)

    got_params = got_macs = got_bn = None
    out = run_cnnc(cnnc, [cnnc_file, "--summary"] + extra, timeout, rep, "--summary")
    if out is not None:
        got_params, got_macs, got_bn = check_summary(out, net, ref_params, ref_bn, ref_macs, got, rep)

    dt = time.time() - t0
    kinds = ("cnnc", "empty", "format", "missing", "extra", "duplicate", "shape", "dtype", "order",
             "params", "macs", "summary")
    detail = ", ".join("%d %s" % (rep.counts[k], k) for k in kinds if rep.counts.get(k))
    status = "PASS" if rep.errors == 0 else "FAIL"
    print("%s %s: entries %d/%d exact (cnnc printed %d)%s; params %s (cnnc %s); MACs %s (cnnc %s)%s; %.2fs" % (
        status, net, matched, len(ref), len(got), "" if not detail else " [" + detail + "]",
        fmt(ref_params), "?" if got_params is None else fmt(got_params),
        fmt(ref_macs), "?" if got_macs is None else fmt(got_macs),
        "" if got_bn is None else "; BN buffers %s" % fmt(got_bn), dt), flush=True)
    return rep.errors == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cnnc", help="path to the cnnc binary")
    ap.add_argument("--net", required=True, nargs="+", metavar="NET[=FILE]",
                    help="reference models (" + ", ".join(R.NETS) + "), each optionally with its .cnn file "
                         "(default: nets/NET.cnn next to tests/); several run in one process, which pays "
                         "PyTorch's import once")
    ap.add_argument("--file", help=".cnn file of a single --net (the same as NET=FILE)")
    ap.add_argument("--dump", action="store_true",
                    help="print the reference's state_dict lines (cnnc --emit=params format) and totals, then exit")
    ap.add_argument("--network", help="passed to cnnc as --network NAME")
    ap.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                    help="passed to cnnc as -D NAME=VALUE (repeatable)")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per cnnc run (default 60)")
    args = ap.parse_args()

    nets = []
    for entry in args.net:
        net, _, path = entry.partition("=")
        if net not in R.NETS:
            print("check_params: unknown net %r; known: %s" % (net, ", ".join(R.NETS)), file=sys.stderr)
            return 2
        nets.append((net, path or None))
    if args.file:
        if len(nets) != 1:
            ap.error("--file goes with a single --net (use NET=FILE for several)")
        nets = [(nets[0][0], args.file)]

    if args.dump:
        for net, _ in nets:
            ref, ref_params, ref_bn, ref_macs = reference(net)
            for e in ref:
                print(R.format_entry(*e))
            print("# %s: input %s, %d entries, Total params: %s, BN buffers: %s, MACs per image: %s (%s M)" % (
                net, "x".join(map(str, R.input_shape(net))), len(ref), fmt(ref_params), fmt(ref_bn),
                fmt(ref_macs), "{:,.2f}".format(ref_macs / 1e6)), file=sys.stderr)
        return 0

    if not args.cnnc:
        ap.error("--cnnc is required unless --dump is given")
    extra = []
    if args.network:
        extra += ["--network", args.network]
    for d in args.defines:
        extra += ["-D", d]
    nets_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "nets")
    failed = [net for net, path in nets
              if not check_net(args.cnnc, net, path or os.path.join(nets_dir, net + ".cnn"), extra, args.timeout)]
    if len(nets) > 1:
        print("%d passed, %d failed%s" % (len(nets) - len(failed), len(failed), (": " + " ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
