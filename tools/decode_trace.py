#!/usr/bin/env python3
"""Where a decode step's time goes, from NATIVELM_DECODE_TRACE files.

  NATIVELM_DECODE_TRACE=t.txt nativelm bench_one_batch --device cuda ... --disable-cuda-graph
  tools/decode_trace.py t.txt

The file holds the last eagerly run decode program: a line "ops blocks", the
op kinds, then per op and block the kernel's stamps (decode_program.h). For
the cluster kernel (one row; NATIVELM_DECODE_CLUSTER=1) a layer's attention
step is stamped in the slot of its first op and its MLP step in the slot of
its fourth, in global nanoseconds (decode_cluster.cu, ClusterStamp): start,
staged, products, gathered, prepared, attended, merged, done, then the grid
barrier's arrival (8) and pass (9) stamped in the next step's slot. Prints
the median over layers of each phase: the slowest block's time from the
step's start (first block past the barrier) to the end of that phase.
For the op-list kernel use its own stamps (not read here).
"""
import statistics
import sys

PHASES = ["staged", "products", "gathered", "prepared", "attended", "merged", "done"]


def load(path):
    lines = open(path).read().split("\n")
    ops, blocks = map(int, lines[0].split())
    rows = [list(map(int, l.split())) for l in lines[2:] if l.strip()]
    return ops, blocks, [[rows[i * blocks + b] for b in range(blocks)] for i in range(ops)]


def step_phases(stamps, last):
    """Per phase: the last block's stamp minus the first block's start (µs)."""
    start = min(s[0] for s in stamps if s[0])
    out = {}
    for k, name in enumerate(PHASES[:last], start=1):
        out[name] = (max(s[k] for s in stamps) - start) / 1e3
    return start, out


def main():
    for path in sys.argv[1:]:
        ops, blocks, t = load(path)
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
