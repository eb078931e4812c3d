"""`clawbench MODEL.onnx`: clawdbot next to onnxruntime on the same inputs, in one run.

Checks that the outputs agree before timing anything (a fast wrong answer is not a result), then alternates
the runtimes run by run so both see the same machine state, and prints median/p90 latency and load time with
the ratio against clawdbot. Minimal for now: CPU only, batch from --batch, threads from --threads.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from ..errors import ClawError
from .inputs import random_inputs


def _limit_threads(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print("clawbench: threadpoolctl is not installed; clawdbot's BLAS thread count is not limited",
              file=sys.stderr)
        return None
    return threadpool_limits(limits=n)


class _Claw:
    name = "clawdbot"

    def __init__(self, model):
        from .. import load
        self.sess = load(model)

    def run(self, feeds):
        return [self.sess.run(feeds)[s.name] for s in self.sess.outputs]


class _Ort:
    name = "onnxruntime"

    def __init__(self, model, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self.sess.run(None, feeds)


def _agree(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        rng = float(np.max(np.abs(y))) or 1.0
        worst = max(worst, float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) / rng)
    return worst


def bench(model: str, runs: int, warmup: int, threads: int, batch: int, tolerance: float):
    limiter = _limit_threads(threads)
    t0 = time.perf_counter()
    claw = _Claw(model)
    claw_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    ort = _Ort(model, threads)
    ort_load = time.perf_counter() - t0
    feeds = random_inputs(claw.sess.inputs, batch=batch)
    err = _agree(claw.run(feeds), ort.run(feeds))
    if err > tolerance:
        raise ClawError(f"outputs disagree (max error {err:.2e} of the output range > {tolerance:g}); "
                        f"not timing a wrong answer")
    times = {claw.name: [], ort.name: []}
    for i in range(warmup + runs):
        for rt in (claw, ort):
            t = time.perf_counter()
            rt.run(feeds)
            if i >= warmup:
                times[rt.name].append(time.perf_counter() - t)
    if limiter is not None:
        limiter.restore_original_limits()
    return {claw.name: (claw_load, times[claw.name]), ort.name: (ort_load, times[ort.name])}, err


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="clawbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an .onnx model (both runtimes load the same file)")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=1e-3, help="max output error relative to its range")
    args = ap.parse_args(argv)
    try:
        results, err = bench(args.model, args.runs, args.warmup, args.threads, args.batch, args.tolerance)
    except ClawError as e:
        print(f"clawbench: error: {e}", file=sys.stderr)
        return 2
    base = statistics.median(results["clawdbot"][1])
    print(f"model {args.model}  batch {args.batch}  threads {args.threads}  runs {args.runs}  "
          f"(outputs agree to {err:.1e} of range)")
    print(f"{'runtime':<14}{'load ms':>10}{'median ms':>12}{'p90 ms':>10}{'vs clawdbot':>13}")
    for name, (load, ts) in results.items():
        med = statistics.median(ts)
        p90 = float(np.percentile(ts, 90))
        print(f"{name:<14}{load * 1e3:>10.1f}{med * 1e3:>12.2f}{p90 * 1e3:>10.2f}{med / base:>12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
