#!/usr/bin/env python3
"""Where a decode step's time goes, from NATIVELM_DECODE_TRACE files.

  NATIVELM_DECODE_TRACE=t.txt nativelm bench_one_batch --device cuda ... --disable-cuda-graph
  tools/decode_trace.py t.txt            (cluster kernel)
  tools/decode_trace.py --op-list t.txt  (op-list kernel)
  tools/decode_trace.py --phases t.txt   (op-list kernel, per phase)
  tools/decode_trace.py --tails t.txt    (op-list kernel, the last blocks of each op)

The file holds the last eagerly run decode program: a line "ops blocks", the
op kinds, then per op and block the kernel's stamps (decode_program.h). For
the cluster kernel (one row; NATIVELM_DECODE_CLUSTER=1) a layer's attention
step is stamped in the slot of its first op and its MLP step in the slot of
its fourth, in global nanoseconds (decode_cluster.cu, ClusterStamp): start,
staged, products, gathered, prepared, attended, merged, done, then the grid
barrier's arrival (8) and pass (9) stamped in the next step's slot. Prints
the median over layers of each phase: the slowest block's time from the
step's start (first block past the barrier) to the end of that phase.
With --phases (op-list kernel), each op's phases on its median block (the
fine stamps: input polled, staged, products, the first output value,
stores), when the producer asked for the op's weights, and the ring wait.
With --op-list, a trace of the op-list kernel (decode_kernel.cu: stamps 0
start, 1 input staged, 2 done in global ns, 6 cycles waited for ring
loads): per op kind, the median over layers of the op's share of the
critical path (its last block done minus the op before's last block done),
split into "staged" (its last block's input staged, from the op before's
end: the dependency's round trip) and "work" (from there to its last block
done), and the ring wait of its median and slowest block.
With --tails (op-list kernel), each GEMV op's median and last block: when
its input was staged and when it was done, how much later the last block
ended than the median one, and the blocks most often among the last three;
on each block's SM clock, fitted to the global timer (block_clocks).
"""
import collections
import statistics
import sys

PHASES = ["staged", "products", "gathered", "prepared", "attended", "merged", "done"]


def load(path):
    """ops, blocks, the stamps [op][block], the op kinds."""
    lines = open(path).read().split("\n")
    ops, blocks = map(int, lines[0].split())
    rows = [list(map(int, l.split())) for l in lines[2:] if l.strip()]
    kinds = list(map(int, lines[1].split()))
    return ops, blocks, [[rows[i * blocks + b] for b in range(blocks)] for i in range(ops)], kinds


def ns_per_cycle(t):
    """The SM clock, from each block's start and done stamps in both ns and cycles."""
    return statistics.median((s[2] - s[0]) / (s[5] - s[3]) for op in t for s in op if s[5] > s[3] and s[2] > s[0])


def fresh(s, t0):
    """Whether block stamps s were written in this program (items without work keep old stamps)."""
    return s[0] >= t0 and s[2] >= s[0]


def stamped(op_stamps, t0):
    """The blocks stamped in this program."""
    return [s for s in op_stamps if fresh(s, t0)]


def fine(s, k):
    """Fine stamp k (cycles) of block stamps s, if this launch wrote it."""
    return s[3] <= s[k] < s[3] + 10**7


def step_phases(stamps, last):
    """Per phase: the last block's stamp minus the first block's start (µs)."""
    start = min(s[0] for s in stamps if s[0])
    out = {}
    for k, name in enumerate(PHASES[:last], start=1):
        out[name] = (max(s[k] for s in stamps) - start) / 1e3
    return start, out


OP_KINDS = {1: "norm + qkv", 2: "norm + gate/up", 3: "add (o, down)", 4: "attention", 5: "norm + LM head"}


def op_name(kinds, i):
    """Op i's name, the two residual adds told apart (o follows attention)."""
    if kinds[i] == 3:
        return "o + residual" if i > 0 and kinds[i - 1] == 4 else "down + residual"
    return OP_KINDS.get(kinds[i], str(kinds[i]))


def op_list(path):
    ops, blocks, t, kinds = load(path)
    cycle = ns_per_cycle(t)
    t0 = min(s[0] for s in t[0] if s[0])
    prev_done, rows = t0, {}
    for i in range(ops):
        v = stamped(t[i], t0)
        if not v:
            continue
        done, staged = max(s[2] for s in v), max(s[1] for s in v)
        waits = sorted(s[6] * cycle / 1e3 for s in v)
        rows.setdefault(kinds[i], []).append(((done - prev_done) / 1e3, (staged - prev_done) / 1e3,
                                              (done - staged) / 1e3, waits[len(waits) // 2], waits[-1]))
        prev_done = done
    print(f"{path}: {ops} ops on {blocks} blocks, {(prev_done - t0) / 1e3:.1f} µs; per op, median over layers (µs)")
    for kind, r in sorted(rows.items()):
        med = [statistics.median(x[j] for x in r) for j in range(5)]
        print(f"  {OP_KINDS.get(kind, kind):15s} x{len(r):3d}: critical path {med[0]:.2f} = staged {med[1]:.2f} + "
              f"work {med[2]:.2f}; ring wait median block {med[3]:.2f}, slowest {med[4]:.2f}")


# Fine stamps (SM cycles, thread 0; decode_kernel.cu and decode_device.cuh)
# in the order an op reaches them: GEMV ops, then attention.
GEMV_PHASES = [(20, "first load in"), (16, "input polled"), (18, "input in smem"), (19, "staged"),
               (15, "products from"), (10, "products to"), (11, "all products"), (14, "value"), (12, "stored"),
               (13, "load handed back")]
ATTN_PHASES = [(13, "scores"), (14, "softmax"), (10, "first load P.V"), (11, "all loads")]


def phases(path):
    """Per op, the median block's phases in µs after the op before's last block finished."""
    ops, blocks, t, kinds = load(path)
    cycle = ns_per_cycle(t)
    t0 = min(s[0] for s in t[0] if s[0])
    cols = {}
    prev_done = None
    for i in range(ops):
        v = stamped(t[i], t0)
        if not v:
            continue
        done = max(s[2] for s in v)
        if kinds[i] == 4:  # the blocks with an attention item
            v = [s for s in v if fine(s, 13)] or v
        if prev_done is not None:
            kind = kinds[i]
            name = op_name(kinds, i)
            c = cols.setdefault(name, {})

            def add(key, value):
                c.setdefault(key, []).append(value)

            for s in v:
                at = (s[0] - prev_done) / 1e3
                add("start", at)
                if s[7] >= t0:
                    add("weights asked for", (s[7] - prev_done) / 1e3)
                for k, label in ATTN_PHASES if kind == 4 else GEMV_PHASES:
                    if fine(s, k):
                        add(label, at + (s[k] - s[3]) * cycle / 1e3)
                add("done", (s[2] - prev_done) / 1e3)
                add("ring wait", s[6] * cycle / 1e3)
            add("op (last block)", (done - prev_done) / 1e3)
        prev_done = done
    print(f"{path}: {ops} ops on {blocks} blocks, SM clock {1 / cycle:.2f} GHz; median block (and slowest), "
          "µs after the op before's last block finished")
    for name, c in cols.items():
        print(f"  {name}:")
        for key, values in c.items():
            values.sort()
            print(f"    {key:18s} {statistics.median(values):7.2f}  ({values[-1]:.2f})")


def block_clocks(t, kinds, t0):
    """Per block, (ns per cycle, offset): its SM clock mapped onto the global
    timer by least squares over its GEMV ops' coarse stamps (the global timer
    moves in steps of ~1 µs; the fit is good to tens of ns). Attention ops are
    left out: blocks without an item keep stale stamps there."""
    fits = []
    for b in range(len(t[0])):
        pts = [(t[i][b][3 + k] - t[0][b][3], t[i][b][k] - t0) for i in range(len(t))
               if kinds[i] != 4 and fresh(t[i][b], t0) for k in range(3)]
        if len(pts) < 2:
            raise SystemExit(f"block {b} has no GEMV stamps: not a trace of the op-list kernel")
        mx = statistics.fmean(x for x, _ in pts)
        my = statistics.fmean(y for _, y in pts)
        a = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        fits.append((a, my - a * mx))
    return fits


def tails(path):
    """Per op, how far its last block ends after its median block, from each
    block's stamps on its calibrated SM clock, and which blocks end last."""
    ops, _, t, kinds = load(path)
    t0 = min(s[0] for s in t[0] if s[0])
    fits = block_clocks(t, kinds, t0)

    def at(b, s, k):  # stamp k (0 start, 1 staged, 2 done) of block b, ns after t0
        return (s[3 + k] - t[0][b][3]) * fits[b][0] + fits[b][1]

    rows, late, prev_done = {}, collections.defaultdict(collections.Counter), None
    for i in range(ops):
        v = [(b, s) for b, s in enumerate(t[i]) if fresh(s, t0)]
        if not v:
            continue
        name = op_name(kinds, i)
        done = sorted((at(b, s, 2), b) for b, s in v)
        if prev_done is not None and kinds[i] != 4:
            staged = sorted(at(b, s, 1) - prev_done for b, s in v)
            mid = statistics.median(d for d, _ in done)
            rows.setdefault(name, []).append((staged[len(v) // 2], staged[-1], mid - prev_done,
                                              done[-1][0] - prev_done, done[-1][0] - mid))
            for _, b in done[-3:]:
                late[name][b] += 1
        prev_done = done[-1][0]
    print(f"{path}: per GEMV op, median over layers (µs after the op before's last block)")
    for name, r in rows.items():
        med = [statistics.median(x[j] for x in r) / 1e3 for j in range(5)]
        top = ", ".join(f"{b} ({n})" for b, n in late[name].most_common(6))
        print(f"  {name:16s} staged: median block {med[0]:.2f}, last {med[1]:.2f}; done: median block {med[2]:.2f}, "
              f"last {med[3]:.2f}; tail {med[4]:.2f}; among the last three most often: {top}")


def main():
    mode = {"--op-list": op_list, "--phases": phases, "--tails": tails}.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if mode:
        for path in sys.argv[2:]:
            mode(path)
        return
    for path in sys.argv[1:]:
        ops, blocks, t, _ = load(path)
        layers = ops // 5
        attn, mlp, per_layer = [], [], []
        for l in range(layers):
            a_start, a = step_phases(t[5 * l], 7)
            m_start, m = step_phases(t[5 * l + 3], 7)
            m = {k: v for k, v in m.items() if k in ("staged", "products", "gathered", "done")}
            a["step"] = (m_start - a_start) / 1e3
            attn.append(a)
            mlp.append(m)
            if l + 1 < layers:
                nxt = min(s[0] for s in t[5 * (l + 1)] if s[0])
                m["step"] = (nxt - m_start) / 1e3
                per_layer.append((nxt - a_start) / 1e3)
        print(f"{path}: {layers} layers on {blocks} blocks; median µs from the step's start")
        for name, steps in (("attention step", attn), ("MLP step", mlp)):
            cols = []
            for k in PHASES + ["step"]:
                values = [s[k] for s in steps if k in s]
                if values:
                    cols.append(f"{k} {statistics.median(values):.2f}")
            print(f"  {name}: " + ", ".join(cols))
        if per_layer:
            print(f"  layer: {statistics.median(per_layer):.2f} µs (median), {sum(per_layer):.1f} µs over "
                  f"{len(per_layer)} layers")


if __name__ == "__main__":
    main()
