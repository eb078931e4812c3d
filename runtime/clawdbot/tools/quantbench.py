"""`python -m clawdbot.tools.quantbench`: clawdbot int8 next to clawdbot fp32 and onnxruntime's own int8.

For each zoo model, four runtimes on the same inputs:

  clawdbot fp32      ModelConverter().convert(model).session()
  clawdbot int8      ModelConverter(quantization_bits=8): int8 weights, dynamic int8 activations where supported
  onnxruntime fp32   the same ONNX model, default graph optimisations
  onnxruntime int8   made with onnxruntime's own tools: quantize_dynamic (per-channel int8 weights) for
                     transformers, quantize_static in QDQ format (per-channel int8 weights, --ort-activations
                     activations, MinMax calibration on --calib generated inputs) for CNNs

--ort-activations defaults to uint8 (U8S8, what onnxruntime's x86 int8 kernels are fastest at: on an AVX-512 VNNI
EPYC, ResNet-50 QDQ with int8 activations ran ~2.5x slower than with uint8, at the same accuracy).

Accuracy first, on --val generated inputs (other seeds than calibration): each int8 runtime against its own
fp32 (cosine, relative L2 error, top-1 agreement for classifiers), and clawdbot fp32 against onnxruntime fp32,
which must agree (relative L2 error < 1e-4: a fast wrong answer is not a result). Then the four runtimes
alternate run by run (after --warmup runs each) and median / p90 latency is printed as a markdown table.
All runtimes get --threads threads (clawdbot's BLAS through threadpoolctl).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import ClawError
from .bench import _limit_threads

DEFAULT_MODELS = ("resnet50", "bert_encoder")
DYNAMIC_MODELS = ("bert_encoder",)  # onnxruntime int8 through quantize_dynamic; the rest through quantize_static
FP32_TOLERANCE = 1e-4  # max relative L2 error of clawdbot fp32 against onnxruntime fp32
CALIB_SEED = 1000      # calibration inputs use seeds CALIB_SEED + i
VAL_SEED = 2000        # validation inputs use seeds VAL_SEED + i (never the calibration ones)
RUNTIMES = ("clawdbot fp32", "clawdbot int8", "onnxruntime fp32", "onnxruntime int8")


class QuantbenchError(Exception):
    """A user mistake or a missing dependency: one line, exit status 2."""


class DisagreeError(Exception):
    """clawdbot fp32 and onnxruntime fp32 disagree: nothing is timed, exit status 1."""


class _Claw:
    def __init__(self, model, bits):
        from ..converter import ModelConverter
        converted = ModelConverter(quantization_bits=bits).convert(model)
        self.quantization = converted.quantization
        self.ops = converted.summary()["ops"]
        self.sess = converted.session()
        self.names = [s.name for s in self.sess.outputs]

    def run(self, feeds):
        out = self.sess.run(feeds)
        return [out[n] for n in self.names]


class _Ort:
    def __init__(self, path, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = threads
        self.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.ops = _op_counts(path)

    def run(self, feeds):
        return self.sess.run(None, feeds)


def _op_counts(path) -> dict[str, int]:
    import onnx
    ops: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return dict(sorted(ops.items()))


class _Reader:
    """onnxruntime's CalibrationDataReader protocol: get_next() until None."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):  # some calibrators ask for it; one pass is all MinMax needs
        pass


def ort_int8(name: str, fp32_path: Path, workdir: Path, calib: int, activations: str = "uint8") -> tuple[Path, str]:
    """onnxruntime's own int8 model of `name` and a line saying how it was made."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from . import zoo
    out = workdir / f"{name}.ort-int8.onnx"
    if name in DYNAMIC_MODELS:
        quantize_dynamic(str(fp32_path), str(out), weight_type=QuantType.QInt8, per_channel=True)
        return out, "quantize_dynamic, QInt8 per-channel weights"
    # Pre-processing folds BatchNormalization into the convs (so the int8 convs carry the folded weights) and
    # fills in shapes; the CNNs' shapes are static apart from batch, so ONNX's own shape inference is enough.
    pre = workdir / f"{name}.pre.onnx"
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    feeds = [zoo.example_inputs(name, batch=1, seed=CALIB_SEED + i) for i in range(calib)]
    act = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}[activations]
    quantize_static(str(pre), str(out), _Reader(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=act)
    return out, f"quant_pre_process + quantize_static QDQ, QInt8 per-channel weights, {act.name} activations, " \
                f"MinMax on {calib} inputs"


def _rel_l2(x: np.ndarray, ref: np.ndarray) -> float:
    x, ref = x.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    return float(np.linalg.norm(x - ref) / (np.linalg.norm(ref) or 1.0))


def _cosine(x: np.ndarray, ref: np.ndarray) -> float:
    x, ref = x.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    den = np.linalg.norm(x) * np.linalg.norm(ref)
    return float(np.dot(x, ref) / den) if den else float(np.array_equal(x, ref))


def compare(outs: list[list[np.ndarray]], refs: list[list[np.ndarray]], classifier: bool) -> dict:
    """`outs` against `refs`: one list of outputs per validation input. Cosine per input, then the mean and the
    worst; relative L2 error over all inputs together; top-1 agreement on the first output of a classifier."""
    cos = [_cosine(np.concatenate([o.ravel() for o in out]), np.concatenate([r.ravel() for r in ref]))
           for out, ref in zip(outs, refs)]
    x = np.concatenate([o.ravel() for out in outs for o in out])
    r = np.concatenate([o.ravel() for ref in refs for o in ref])
    res = {"cosine_mean": float(np.mean(cos)), "cosine_min": float(np.min(cos)), "rel_l2": _rel_l2(x, r),
           "top1_agreement": None}
    if classifier:
        a = np.concatenate([out[0].reshape(out[0].shape[0], -1).argmax(1) for out in outs])
        b = np.concatenate([ref[0].reshape(ref[0].shape[0], -1).argmax(1) for ref in refs])
        res["top1_agreement"] = float(np.mean(a == b))
    return res


def bench_model(name: str, workdir: Path, runs: int, warmup: int, threads: int, val: int, calib: int,
                ort_activations: str = "uint8") -> dict:
    from . import zoo
    model = zoo.build(name)
    fp32_path = zoo.write_model(model, workdir / f"{name}.onnx")
    int8_path, ort_recipe = ort_int8(name, fp32_path, workdir, calib, ort_activations)
    rts = {"clawdbot fp32": _Claw(model, None), "clawdbot int8": _Claw(model, 8),
           "onnxruntime fp32": _Ort(fp32_path, threads), "onnxruntime int8": _Ort(int8_path, threads)}
    feeds = [zoo.example_inputs(name, batch=1, seed=VAL_SEED + i) for i in range(val)]
    outs = {k: [rt.run(f) for f in feeds] for k, rt in rts.items()}
    classifier = outs["onnxruntime fp32"][0][0].ndim == 2  # [batch, classes] logits: top-1 means something
    fp32 = compare(outs["clawdbot fp32"], outs["onnxruntime fp32"], classifier)
    if not fp32["rel_l2"] < FP32_TOLERANCE:
        raise DisagreeError(f"{name}: clawdbot fp32 and onnxruntime fp32 disagree (relative L2 error "
                            f"{fp32['rel_l2']:.2e} >= {FP32_TOLERANCE:g}); not timing a wrong answer")
    accuracy = {"clawdbot int8": compare(outs["clawdbot int8"], outs["clawdbot fp32"], classifier),
                "onnxruntime int8": compare(outs["onnxruntime int8"], outs["onnxruntime fp32"], classifier)}

    # Alternate run by run, rotating which runtime goes first, so all four see the same machine state.
    order = list(rts)
    times: dict[str, list[float]] = {k: [] for k in order}
    for i in range(warmup + runs):
        for k in order[i % 4:] + order[:i % 4]:
            t = time.perf_counter()
            rts[k].run(feeds[0])
            if i >= warmup:
                times[k].append((time.perf_counter() - t) * 1e3)
    res = {}
    base = statistics.median(times["clawdbot fp32"])
    for k in order:
        med = statistics.median(times[k])
        res[k] = {"times_ms": times[k], "median_ms": med, "p90_ms": float(np.percentile(times[k], 90)),
                  "vs_clawdbot_fp32": med / base, "accuracy_vs_fp32": accuracy.get(k)}
    q = rts["clawdbot int8"].quantization
    return {
        "runtimes": res,
        "fp32_agreement": fp32,
        "claw_int8_over_fp32": res["clawdbot int8"]["median_ms"] / res["clawdbot fp32"]["median_ms"],
        "ort_int8_over_fp32": res["onnxruntime int8"]["median_ms"] / res["onnxruntime fp32"]["median_ms"],
        "ort_int8_recipe": ort_recipe,
        "claw_int8": {"quantized_nodes": len(q.quantized), "kept_fp32": q.kept, "ops": rts["clawdbot int8"].ops},
        "ort_int8_ops": rts["onnxruntime int8"].ops,
    }


def table(results: dict) -> str:
    lines = ["| model | runtime | median ms | p90 ms | vs clawdbot fp32 | cosine vs fp32 (mean / min) "
             "| rel L2 vs fp32 | top-1 agreement |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for k, rt in r["runtimes"].items():
            acc = rt["accuracy_vs_fp32"]
            cos = "—" if acc is None else f"{acc['cosine_mean']:.5f} / {acc['cosine_min']:.5f}"
            l2 = "—" if acc is None else f"{acc['rel_l2']:.2e}"
            top1 = "—" if acc is None or acc["top1_agreement"] is None else f"{acc['top1_agreement']:.0%}"
            lines.append(f"| {name} | {k} | {rt['median_ms']:.2f} | {rt['p90_ms']:.2f} | "
                         f"{rt['vs_clawdbot_fp32']:.2f}× | {cos} | {l2} | {top1} |")
    lines.append("")
    for name, r in results.items():
        lines.append(f"{name}: clawdbot int8 is {r['claw_int8_over_fp32']:.2f}x its fp32; "
                     f"onnxruntime int8 is {r['ort_int8_over_fp32']:.2f}x its fp32")
    lines.append("(median latency, int8 / fp32: below 1.00x is faster)")
    return "\n".join(lines)


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short",
                               "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clawdbot.tools.quantbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated zoo model names")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per runtime")
    ap.add_argument("--warmup", type=int, default=3, help="untimed runs per runtime first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--val", type=int, default=16, help="generated validation inputs for the accuracy columns")
    ap.add_argument("--calib", type=int, default=8, help="generated calibration inputs for onnxruntime's "
                                                         "static quantization")
    ap.add_argument("--ort-activations", choices=("uint8", "int8"), default="uint8",
                    help="activation type of onnxruntime's static (CNN) int8 models")
    ap.add_argument("--json", help="also write the raw samples and the accuracy figures to this file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)

    import clawdbot
    from . import zoo
    try:
        try:
            models = zoo.parse_names(args.models)
        except ValueError as e:
            raise QuantbenchError(str(e)) from None
        for opt in ("runs", "threads", "val", "calib"):
            if getattr(args, opt) < 1:
                raise QuantbenchError(f"--{opt} must be at least 1")
        if args.warmup < 0:
            raise QuantbenchError("--warmup must be at least 0")
        try:
            import onnxruntime
            import onnxruntime.quantization  # noqa: F401
        except ImportError as e:
            raise QuantbenchError(f"onnxruntime (with its quantization tools) is needed: {e}") from None
        limiter = _limit_threads(args.threads)
        try:
            with tempfile.TemporaryDirectory(prefix="quantbench-") as tmp:
                results = {}
                for name in models:
                    print(f"quantbench: {name}: quantizing, {args.val} validation input(s), {args.warmup} warm-up "
                          f"+ {args.runs} run(s) per runtime", file=sys.stderr)
                    results[name] = bench_model(name, Path(tmp), args.runs, args.warmup, args.threads, args.val,
                                                args.calib, args.ort_activations)
        finally:
            if limiter is not None:
                limiter.restore_original_limits()
    except QuantbenchError as e:
        print(f"quantbench: error: {e}", file=sys.stderr)
        return 2
    except (DisagreeError, ClawError) as e:
        print(f"quantbench: error: {e}", file=sys.stderr)
        return 1

    versions = {"clawdbot": clawdbot.__version__, "commit": _commit(), "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0]}
    command = " ".join(["python -m clawdbot.tools.quantbench", *map(shlex.quote, argv)])
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"command: {command}")
    print(f"batch 1, {args.threads} thread(s), {args.runs} runs after {args.warmup} warm-up, accuracy on "
          f"{args.val} generated inputs; clawdbot fp32 vs onnxruntime fp32 relative L2 error: "
          + ", ".join(f"{n} {r['fp32_agreement']['rel_l2']:.1e}" for n, r in results.items()))
    for n, r in results.items():
        print(f"onnxruntime int8 for {n}: {r['ort_int8_recipe']}")
    print()
    print(table(results))
    if args.json:
        doc = {"versions": versions, "command": command, "threads": args.threads, "runs": args.runs,
               "warmup": args.warmup, "val": args.val, "calib": args.calib,
               "ort_activations": args.ort_activations, "models": results}
        try:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(args.json, "w") as f:  # a reader never sees half a file
                f.write(json.dumps(doc, indent=2))
        except OSError as e:
            print(f"quantbench: error: --json {args.json}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
