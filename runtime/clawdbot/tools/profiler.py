"""`claw-profiler MODEL`: time every node of a model on the CPU driver and print where the time goes.

Minimal by design for now: per-op-type totals and the slowest nodes, averaged over --runs after a warm-up.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict


from ..errors import ClawError
from .inputs import random_inputs


def profile(model: str, runs: int = 5, seed: int = 0, batch: int = 1):
    from .. import load
    sess = load(model)
    feeds = random_inputs(sess.inputs, batch=batch, seed=seed)
    program = sess._program
    inputs = [feeds[s.name] for s in sess.inputs]
    program.run(inputs)  # warm-up: first-touch page faults, BLAS thread start
    per_node: dict[int, float] = defaultdict(float)
    nodes = {}
    for _ in range(runs):
        _, times = program.run_profiled(inputs)
        for k, (node, t) in enumerate(times):
            per_node[k] += t / runs
            nodes[k] = node
    return [(nodes[k], per_node[k]) for k in sorted(per_node)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="claw-profiler", description=__doc__)
    ap.add_argument("model", help=".claw or .onnx model")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=1, help="size for symbolic input dims")
    ap.add_argument("--top", type=int, default=15, help="how many of the slowest nodes to list")
    args = ap.parse_args(argv)
    try:
        rows = profile(args.model, args.runs, batch=args.batch)
    except ClawError as e:
        print(f"claw-profiler: error: {e}", file=sys.stderr)
        return 2
    total = sum(t for _, t in rows) or 1e-12
    by_op: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for node, t in rows:
        by_op[node.op][0] += t
        by_op[node.op][1] += 1
    print(f"{'op':<24}{'nodes':>7}{'ms':>10}{'share':>8}")
    for op, (t, n) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        print(f"{op:<24}{n:>7}{t * 1e3:>10.3f}{t / total:>8.1%}")
    print(f"{'total':<24}{len(rows):>7}{total * 1e3:>10.3f}")
    print(f"\nslowest {args.top} nodes:")
    for node, t in sorted(rows, key=lambda r: -r[1])[: args.top]:
        print(f"  {t * 1e3:9.3f} ms  {node.op:<16} {node.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
