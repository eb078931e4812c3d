"""`python -m clawdbot.tools.loadbench`: cold load time and peak RSS, clawdbot next to onnxruntime.

Each measurement is a fresh Python process that imports its runtime, loads the model and runs it once: load
time runs from just before the spawn to the child's first-result line (interpreter start included), peak RSS
is the child's ru_maxrss from wait4. Runs alternate clawdbot / onnxruntime after one discarded warm-up of each,
so every number is a cold process over a warm page cache. Both runtimes get one thread.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import shlex
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from ..atomic import atomic_open
from ..errors import ClawError

DEFAULT_MODELS = ("resnet50", "mobilenet_v2", "efficientnet_b0", "bert_encoder")
TOLERANCE = 1e-3  # max |claw - ort| relative to the range of onnxruntime's output
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
RSS_PER_MIB = 1 << 20 if sys.platform == "darwin" else 1 << 10  # ru_maxrss: bytes on macOS, KiB on Linux

# The children print MARK as soon as they hold the first result and save their outputs after it, so the clock
# stops at the first result, not at the end of an npz write.
MARK = b"loadbench: first result\n"
CHILD = {
    "claw": textwrap.dedent("""\
        import sys
        import numpy as np
        import clawdbot
        model, inputs, out = sys.argv[1:4]
        sess = clawdbot.load(model)
        result = sess.run(dict(np.load(inputs)))
        print("loadbench: first result", flush=True)
        np.savez(out, **result)
    """),
    "ort": textwrap.dedent("""\
        import sys
        import numpy as np
        import onnxruntime as ort
        model, inputs, out = sys.argv[1:4]
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        result = sess.run(None, dict(np.load(inputs)))
        print("loadbench: first result", flush=True)
        np.savez(out, **{o.name: r for o, r in zip(sess.get_outputs(), result)})
    """),
}
# Linux carries the forking process's RSS high-water mark into the child's ru_maxrss (exec keeps it), so a child
# forked from this process, which has built and converted the models, would report our peak instead of its own.
# Children are forked by a fresh launcher process instead (~15 MiB, below any child that imports numpy).
LAUNCHER = "from clawdbot.tools.loadbench import _launcher; _launcher()"


class LoadbenchError(Exception):
    pass


def prepare(name: str, workdir: Path) -> dict[str, Path]:
    """The model as ONNX and as .claw, and its batch-1 inputs, written once for all the runs."""
    import numpy as np

    from ..converter import ModelConverter
    from . import zoo
    paths = {"ort": workdir / f"{name}.onnx", "claw": workdir / f"{name}.claw", "inputs": workdir / f"{name}.npz"}
    zoo.save(name, paths["ort"])
    ModelConverter(source_framework="onnx").convert(paths["ort"]).save(paths["claw"])
    np.savez(paths["inputs"], **zoo.example_inputs(name, batch=1))
    return paths


def _time_child(runtime: str, model: str, inputs: str, out: str, timeout: float) -> dict:
    """In the launcher: spawn one child, time it to MARK, wait4 it for its peak RSS; kill it at the timeout."""
    what, err_path = f"{runtime} on {Path(model).name}", Path(out).with_suffix(".stderr")
    # stderr goes to a file: a child chatting on a full stderr pipe would block while we wait on stdout.
    with open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD[runtime], model, inputs, out], stdout=subprocess.PIPE,
                                stderr=err, cwd=err_path.parent, env={**os.environ, **THREAD_ENV})
        deadline, seen, elapsed = t0 + timeout, b"", None
        with proc.stdout:
            while elapsed is None and select.select([proc.stdout], [], [], max(0, deadline - time.perf_counter()))[0]:
                chunk = os.read(proc.stdout.fileno(), 4096)
                seen += chunk
                if MARK in seen:
                    elapsed = (time.perf_counter() - t0) * 1e3
                elif not chunk:
                    break  # stdout closed without a result: the exit status and stderr say why
        # Polled rather than a blocking wait4, so the npz write after MARK stays under the deadline too.
        while not (reaped := os.wait4(proc.pid, os.WNOHANG))[0]:
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9  # reaped here; keeps Popen from waiting on it again
                raise LoadbenchError(f"{what}: still running after the {timeout:g} s timeout; killed")
            time.sleep(0.01)
    _, status, usage = reaped
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or elapsed is None:
        tail = " | ".join(err_path.read_text(errors="replace").strip().splitlines()[-5:]) or "(no stderr)"
        raise LoadbenchError(f"{what} failed (exit status {proc.returncode}): {tail}")
    return {"load_ms": elapsed, "peak_rss_mib": usage.ru_maxrss / RSS_PER_MIB}


def _launcher() -> None:
    runtime, model, inputs, out, timeout = sys.argv[1:6]
    try:
        print(json.dumps(_time_child(runtime, model, inputs, out, float(timeout))))
    except LoadbenchError as e:
        print(json.dumps({"error": str(e)}))


def measure(runtime: str, model: Path, inputs: Path, out: Path, timeout: float) -> tuple[float, float]:
    """(ms from spawn to first result, peak RSS MiB) of one fresh child process, via a launcher."""
    what = f"{runtime} on {model.name}"
    cmd = [sys.executable, "-c", LAUNCHER, runtime, str(model), str(inputs), str(out), str(timeout)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30)
        reply = json.loads(done.stdout)
    except subprocess.TimeoutExpired:
        raise LoadbenchError(f"the launcher for {what} hung; killed") from None
    except ValueError:
        tail = " | ".join(done.stderr.strip().splitlines()[-5:]) or "(no stderr)"
        raise LoadbenchError(f"the launcher for {what} failed (exit status {done.returncode}): {tail}") from None
    if "error" in reply:
        raise LoadbenchError(reply["error"])
    return reply["load_ms"], reply["peak_rss_mib"]


def check_agree(name: str, claw_out: Path, ort_out: Path) -> float:
    """The worst output's max |claw - ort| over the range of onnxruntime's; raises past TOLERANCE."""
    import numpy as np
    worst = 0.0
    with np.load(claw_out) as claw, np.load(ort_out) as ref:
        for key in ref.files:
            got = claw[key].astype(np.float64) if key in claw.files else None
            want = ref[key].astype(np.float64)
            if got is None or got.shape != want.shape:
                raise LoadbenchError(f"{name}: output {key!r}: clawdbot gives "
                                     f"{'nothing' if got is None else got.shape}, onnxruntime {want.shape}")
            span = (float(np.ptp(want)) if want.size else 0.0) or 1.0
            diff = float(np.max(np.abs(got - want), initial=0)) / span
            if not diff <= TOLERANCE:  # `not <=` so that a NaN disagrees too
                raise LoadbenchError(f"{name}: output {key!r} disagrees with onnxruntime: max abs diff "
                                     f"{diff:.2e} of its range > {TOLERANCE:g}")
            worst = max(worst, diff)
    return worst


def bench_model(name: str, workdir: Path, repeat: int, timeout: float) -> dict:
    paths = prepare(name, workdir)
    outs = {rt: workdir / f"{name}.{rt}.out.npz" for rt in CHILD}
    result = {rt: {"load_ms": [], "peak_rss_mib": []} for rt in CHILD}
    for i in range(repeat + 1):
        for rt in CHILD:  # alternating, so both see the same machine state
            load_ms, rss = measure(rt, paths[rt], paths["inputs"], outs[rt], timeout)
            if i > 0:  # run 0 warms the page cache and is discarded
                result[rt]["load_ms"].append(load_ms)
                result[rt]["peak_rss_mib"].append(rss)
        if i == 0:  # before timing anything: a fast wrong answer is not a result
            result["max_rel_diff"] = check_agree(name, outs["claw"], outs["ort"])
    for rt in CHILD:
        result[rt]["median_load_ms"] = statistics.median(result[rt]["load_ms"])
        result[rt]["median_peak_rss_mib"] = statistics.median(result[rt]["peak_rss_mib"])
    result["load_ratio"] = result["claw"]["median_load_ms"] / result["ort"]["median_load_ms"]
    result["rss_ratio"] = result["claw"]["median_peak_rss_mib"] / result["ort"]["median_peak_rss_mib"]
    return result


def table(results: dict, repeat: int) -> str:
    rows = [f"Cold process, warm page cache — median of {repeat} run(s), 1 thread each, load = process start to "
            f"first result\n",
            "| model | claw load ms | ort load ms | load ratio (claw/ort) | claw peak RSS MiB | ort peak RSS MiB "
            "| RSS ratio |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        c, o = r["claw"], r["ort"]
        rows.append(f"| {name} | {c['median_load_ms']:.0f} | {o['median_load_ms']:.0f} | {r['load_ratio']:.2f}× "
                    f"| {c['median_peak_rss_mib']:.0f} | {o['median_peak_rss_mib']:.0f} | {r['rss_ratio']:.2f}× |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clawdbot.tools.loadbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated zoo model names")
    ap.add_argument("--repeat", type=int, default=5, help="measured runs per runtime, after one warm-up")
    ap.add_argument("--workdir", help="where models, inputs and outputs go (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a child is killed")
    ap.add_argument("--json", help="also write the raw samples and medians to this file")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    import numpy as np

    import clawdbot

    from . import zoo
    try:
        try:
            models = zoo.parse_names(args.models)
        except ValueError as e:
            raise LoadbenchError(str(e)) from None
        if args.repeat < 1:
            raise LoadbenchError("--repeat must be at least 1")
        try:
            import onnxruntime
        except ImportError:
            raise LoadbenchError("onnxruntime is not installed") from None
        with tempfile.TemporaryDirectory(prefix="loadbench-") as tmp:
            workdir = Path(args.workdir or tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            results = {}
            for name in models:
                print(f"loadbench: {name}: 1 warm-up + {args.repeat} run(s) per runtime", file=sys.stderr)
                results[name] = bench_model(name, workdir, args.repeat, args.timeout)
    except (LoadbenchError, ClawError) as e:
        print(f"loadbench: error: {e}", file=sys.stderr)
        return 2
    versions = {"clawdbot": clawdbot.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
                "python": sys.version.split()[0]}
    command = " ".join(["python -m clawdbot.tools.loadbench", *map(shlex.quote, argv)])
    print(", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"command: {command}\n")
    print(table(results, args.repeat))
    if args.json:
        doc = {"versions": versions, "command": command, "repeat": args.repeat, "threads": 1, "models": results}
        try:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            with atomic_open(args.json, "w") as f:
                f.write(json.dumps(doc, indent=2))
        except OSError as e:
            print(f"loadbench: error: --json {args.json}: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
