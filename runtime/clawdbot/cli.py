"""`claw`: convert models, inspect .claw files, run them, list the op set.

    claw convert MODEL.onnx -o MODEL.claw [--dims batch=4] [--target BOARD [--ram MIB]] [--quantize 8|4]
    claw info MODEL.claw [--dims batch=4] [--memory-plot OUT.png]
    claw run MODEL.claw --input input=x.npy [-o OUTDIR]
    claw ops
    claw quant-report FP32_MODEL QUANT_MODEL [--inputs DIR_OR_NPZ] [--labels LABELS.npy] [--batches N] [--json OUT]
    claw serve MODEL_OR_BUNDLE [--host H] [--port P] [--name NAME] [--queue N] [--workers N]
    claw agent [--port /dev/ttyAMA0] [--listen 127.0.0.1:7070] [--root /var/lib/clawdbot] [--serve-port 8000]

User mistakes and bad files end with one line on stderr (`claw: error: …`) and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .errors import ClawError


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    from .atomic import atomic_open
    with atomic_open(path) as f:
        np.save(f, array)


def _parse_dims(specs: list[str] | None) -> dict[str, int] | None:
    """--dims batch=4 (repeated, or comma-separated): the symbolic input dims to plan memory for."""
    if not specs:
        return None
    dims: dict[str, int] = {}
    for item in (i.strip() for spec in specs for i in spec.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        size = int(value) if value.strip().isdigit() else 0
        if not sep or not name.strip() or size < 1:
            raise ClawError(f"--dims {item!r}: expected NAME=SIZE with a positive size, e.g. batch=4")
        dims[name.strip()] = size
    return dims


# Target files live in the source checkout, next to the package directory (runtime/clawdbot).
TARGETS_DIR = Path(__file__).resolve().parents[2] / "targets"


def _load_target(name: str):
    from .crossbuild.targets import load_target
    return load_target(name, TARGETS_DIR)


def _plan_for(path_or_graph, dims: dict[str, int] | None, graph=None):
    """The memory plan of a .claw file (or of a graph) for `dims`: the plan stored in the file at conversion
    when it was made for these dims, else one made now. `graph`: the file's graph, if already loaded."""
    from .plan import memory
    is_path = isinstance(path_or_graph, (str, os.PathLike))
    if is_path:
        plan = memory.stored_plan(path_or_graph)
        if plan is not None and _made_for(plan, dims):
            return plan
    if graph is None:
        graph = _load_graph(path_or_graph) if is_path else path_or_graph
    return memory.plan_memory(graph, dims)


def _made_for(plan, dims: dict[str, int] | None) -> bool:
    """No dims asked for: the file's plan, whatever it was made for. Else only one made for exactly these
    (a dim the plan assumed was not given, so asking for it, even at 1, replans to say so)."""
    return dims is None or {k: v for k, v in plan.dims.items() if k not in plan.assumed} == dims


def _check_budget(name: str, plan, target, ram_mib: int | None) -> str:
    """The line saying how much of the board's budget the model leaves; over budget raises BuildError (exit 2),
    with the same verdict and message as `invoke build`."""
    from .crossbuild.build import memory_report
    r = memory_report(name, plan, target, ram_mib)
    taking = f"; taking {', '.join(f'{d}=1' for d in r['assumed'])} (set with --dims)" if r["assumed"] else ""
    uncounted = f"; not counted: {', '.join(r['dynamic'])} (sized at run time)" if r["dynamic"] else ""
    return (f"memory: needs {r['need_bytes'] / 2**20:.1f} MiB of {target.name}'s {r['budget_bytes'] / 2**20:.0f} "
            f"MiB budget ({r['ram_mib']} MiB RAM): {r['margin_bytes'] / 2**20:.1f} MiB to spare{taking}{uncounted}")


def cmd_convert(args) -> int:
    from .converter import ModelConverter
    dims = _parse_dims(args.dims)
    if args.target is None and args.ram is not None:
        raise ClawError("--ram picks the board's RAM variant for the memory check: give --target too")
    target = _load_target(args.target) if args.target else None
    if target is not None:
        target.variant(args.ram)  # an unknown RAM size fails before the conversion's work
    src = Path(args.model)
    out = Path(args.output) if args.output else src.with_suffix(".claw")
    options = None
    if args.quantize:
        from .quant.rewrite import QuantOptions
        options = QuantOptions(bits=args.quantize, group_size=args.group_size or 0,
                               keep_fp32=tuple(k for spec in args.keep_fp32 or () for k in spec.split(",") if k))
    elif args.group_size or args.keep_fp32:
        raise ClawError("--group-size and --keep-fp32 go with --quantize 8|4")
    model = ModelConverter(source_framework=args.framework, target_format="claw_ir",
                           quant_options=options).convert(str(src))
    plan = _plan_for(model.graph, dims) if target is not None else None
    budget = _check_budget(src.stem, plan, target, args.ram) if target is not None else None
    model.save(out, dims, plan=plan)
    s = model.summary()
    print(f"{src} -> {out}: {s['nodes']} nodes, {s['params']:,} parameters ({_human(s['param_bytes'])}), "
          f"file {_human(out.stat().st_size)}")
    if model.quantization is not None:
        q = model.quantization
        print(f"quantized: int{options.bits} weights in {len(q.quantized)} node(s)"
              + (f"; kept fp32: {len(q.kept)} ({_kept_summary(q.kept)})" if q.kept else "")
              + "; compare with the fp32 model: claw quant-report")
    if budget:
        print(budget)
    return 0


def _kept_summary(kept: dict[str, str]) -> str:
    """Why nodes stayed fp32, counted by reason (a model has hundreds of them)."""
    reasons: dict[str, int] = {}
    for why in kept.values():
        reasons[why] = reasons.get(why, 0) + 1
    return "; ".join(f"{n} x {why}" for why, n in sorted(reasons.items(), key=lambda r: -r[1]))


def _load_graph(path: str):
    from .ir.clawfile import load_graph
    return load_graph(path)


def _bytes(n: int) -> str:
    return f"{n:,} B" if n < 1024 else f"{n:,} B ({_human(n)})"


def _memory_lines(plan) -> list[str]:
    if plan.dims:
        dims = ", ".join(f"{k}={v}" for k, v in plan.dims.items())
        dims += f" (assumed, not given: {', '.join(plan.assumed)}; set with --dims)" if plan.assumed else ""
    else:
        dims = "none (static input shapes)"
    shared, views = plan.shared_values(), len(plan.views)
    scratch = [b.size for b in plan.buffers if b.name.startswith("scratch:")]
    lines = [f"memory:      planned for the {plan.driver} driver, dims {dims}",
             f"  weights:     {_bytes(plan.weights_bytes)}",
             f"  arena:       {_bytes(plan.arena_bytes)}",
             f"  lower bound: {_bytes(plan.lower_bound)}",
             f"  efficiency:  {plan.efficiency:.3f} (arena / lower bound)",
             f"  sharing:     {shared} values share a buffer ({shared - views} in place, {views} as views)",
             f"  scratch:     {_bytes(sum(scratch))} in {len(scratch)} kernel buffers"]
    if plan.dynamic:
        lines.append(f"  dynamic:     {', '.join(plan.dynamic)} (outside the arena: sized at run time)")
    return lines


def _info_plan(args, graph, dims: dict[str, int] | None):
    """(plan, None), or (None, why) when the plan was not asked for and cannot be made: a model whose memory
    cannot be planned is still worth describing. Asked for (--dims, --memory-plot), the error is the user's."""
    try:
        return _plan_for(args.file, dims, graph=graph), None
    except ClawError as e:
        if dims is not None or args.memory_plot:
            raise
        return None, str(e)


def cmd_info(args) -> int:
    from .ir.clawfile import read_header
    dims = _parse_dims(args.dims)
    if args.memory_plot:
        from .plan.plot import require_matplotlib
        require_matplotlib()
    graph = _load_graph(args.file)
    header = read_header(args.file)
    plan, why = _info_plan(args, graph, dims)
    ops: dict[str, int] = {}
    for op in graph.iter_ops():
        ops[op] = ops.get(op, 0) + 1
    print(f"file:        {args.file} ({_human(Path(args.file).stat().st_size)}), format {header.version}")
    print(f"graph:       {graph.name!r} from {graph.metadata.get('source', '?')}"
          + (f" opset {graph.metadata['opset']}" if "opset" in graph.metadata else ""))
    print(f"parameters:  {graph.param_count():,} in {len(graph.constants)} tensors ({_human(graph.param_bytes())})")
    print(f"nodes:       {len(graph.nodes)}")
    for n, t in graph.input_types():
        print(f"input:       {n}: {t}")
    for n, t in graph.output_types():
        print(f"output:      {n}: {t}")
    print("ops:")
    for op, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {op:<24} {count}")
    for line in _memory_lines(plan) if plan else [f"memory:      no plan: {why}"]:
        print(line)
    if args.memory_plot:
        from .plan.plot import plot_plan
        print(f"memory plot: {plot_plan(plan, args.memory_plot, graph.name or Path(args.file).stem)}")
    return 0


def _parse_feed(spec: str) -> tuple[str, Path]:
    if "=" not in spec:
        raise ClawError(f"--input {spec!r}: expected NAME=FILE.npy")
    name, file = spec.split("=", 1)
    return name, Path(file)


def cmd_run(args) -> int:
    from . import load
    sess = load(args.model)
    feeds = {}
    for spec in args.input or []:
        name, file = _parse_feed(spec)
        try:
            feeds[name] = np.load(file, allow_pickle=False)
        except FileNotFoundError:
            raise ClawError(f"--input {name}: no such file {file}") from None
        except (ValueError, OSError) as e:
            raise ClawError(f"--input {name}: {file} is not a readable .npy file: {e}") from None
    outputs = sess.run(feeds)
    outdir = Path(args.output_dir)
    outdir.mkdir(parents=True, exist_ok=True)
    for name, value in outputs.items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        path = outdir / f"{safe}.npy"
        _atomic_save_npy(path, value)
        print(f"{name}: {value.dtype}{list(value.shape)} -> {path}")
    return 0


def cmd_ops(args) -> int:
    from .hal.cpu.kernels import KERNELS
    from .ir.ops import OPS
    from .ir.ops.registry import GROUPS
    for group in GROUPS:
        ops = sorted((o for o in OPS.values() if o.group == group), key=lambda o: o.name)
        if not ops:
            continue
        print(f"[{group}]")
        for o in ops:
            cpu = "" if o.name in KERNELS else "  (no CPU kernel)"
            print(f"  {o.name:<26} {o.doc.splitlines()[0] if o.doc else ''}{cpu}")
    return 0


def cmd_quant_report(args) -> int:
    from .quant import report
    fp32, quant = report.load_any_graph(args.fp32_model), report.load_any_graph(args.quant_model)
    labels = report.load_labels(args.labels) if args.labels else None  # bad files fail before the runs
    if args.json:
        report.check_json_path(args.json)
    if args.inputs:
        feeds = report.load_feeds(args.inputs, fp32, args.batches)
    else:
        feeds = report.random_feeds(fp32, args.batches or 1)
        print(f"inputs: random, {len(feeds)} batch(es) of {report.RANDOM_BATCH} (give real ones with --inputs)")
    result = report.compare(fp32, quant, feeds, labels)
    print(result.format())
    if args.json:
        print(f"json: {report.write_json(result, args.json)}")
    return 0


def cmd_serve(args) -> int:
    from .serve import serve
    return serve(args.model, host=args.host, port=args.port, name=args.name, queue_size=args.queue,
                 workers=args.workers)


def cmd_agent(args) -> int:
    from .deploy.listener import parse_listen
    from .deploy.service import run_agent
    if not args.port and not args.listen:
        raise ClawError("claw agent needs --port (a serial line), --listen (for ssh), or both")
    listen = parse_listen(args.listen) if args.listen else None
    return run_agent(Path(args.root), args.port, args.baud, args.serve_port, listen)


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port number (0-65535; 0 picks a free one)")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="claw", description="clawdbot edge inference runtime")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="convert a model to a .claw file")
    c.add_argument("model", help="source model (.onnx)")
    c.add_argument("-o", "--output", help="output .claw path (default: next to the model)")
    c.add_argument("--framework", default="onnx", help="source framework (default: onnx)")
    c.add_argument("--target", metavar="BOARD",
                   help="check the model's planned memory against this board's budget (targets/BOARD.toml); "
                        "over budget, exit 2 and write nothing")
    c.add_argument("--ram", type=_positive_int, metavar="MIB",
                   help="the board's RAM variant in MiB (default: the target's default)")
    c.add_argument("--dims", action="append", metavar="NAME=SIZE",
                   help="symbolic input dims to plan memory for (the plan stored in the file, and --target's "
                        "check), e.g. batch=4; repeat, or separate with commas; others are taken as 1")
    c.add_argument("--quantize", type=int, choices=(8, 4), metavar="8|4",
                   help="8: int8 weights per output channel, matmul/conv activations quantized on the fly (int8 "
                        "GEMM); 4: int4 weights in groups, fp32 compute (matmul, gemm, conv, gather weights)")
    c.add_argument("--group-size", type=_positive_int, metavar="N",
                   help="columns per scale with --quantize (default: whole rows for 8, 64 for 4)")
    c.add_argument("--keep-fp32", action="append", metavar="NODE",
                   help="leave these nodes (names or output names) in fp32; repeat, or separate with commas "
                        "(claw quant-report ranks the layers that lose most)")
    c.set_defaults(func=cmd_convert)
    i = sub.add_parser("info", help="describe a .claw file: ops, parameters, sizes, memory plan")
    i.add_argument("file")
    i.add_argument("--dims", action="append", metavar="NAME=SIZE",
                   help="plan memory for these symbolic input dims, e.g. batch=4 (others are taken as 1)")
    i.add_argument("--memory-plot", metavar="OUT.png",
                   help="draw the arena over time as a PNG (needs matplotlib: pip install 'clawdbot[plot]')")
    i.set_defaults(func=cmd_info)
    r = sub.add_parser("run", help="run a model on .npy inputs and write .npy outputs")
    r.add_argument("model", help=".claw (or .onnx) model")
    r.add_argument("--input", "-i", action="append", metavar="NAME=FILE.npy", help="one per model input")
    r.add_argument("-o", "--output-dir", default=".", help="where to write OUTPUT_NAME.npy (default: .)")
    r.set_defaults(func=cmd_run)
    o = sub.add_parser("ops", help="list the claw op set")
    o.set_defaults(func=cmd_ops)
    q = sub.add_parser("quant-report", help="compare a quantized model with its fp32 original, output by "
                                            "output and layer by layer",
                       description="Run both models on the same inputs; print per output the cosine similarity, "
                                   "max absolute and relative L2 error and top-1 agreement (and accuracy, with "
                                   "--labels), the quantized layers worst first (to pick nodes to keep in fp32), "
                                   "and the sizes.")
    q.add_argument("fp32_model", metavar="FP32_MODEL", help="the original model (.claw or .onnx)")
    q.add_argument("quant_model", metavar="QUANT_MODEL", help="its quantized version (.claw or .onnx)")
    q.add_argument("--inputs", metavar="DIR_OR_NPZ",
                   help="a folder of INPUT_NAME.npy files or an .npz keyed by input name, each with a leading "
                        "sample axis (default: random inputs)")
    q.add_argument("--labels", metavar="LABELS.npy",
                   help="integer classes, one per sample, for the first output's top-1 accuracy")
    q.add_argument("--batches", type=_positive_int, metavar="N",
                   help="split the inputs into N batches (default: batches of the model's fixed batch dim, or "
                        "of at most 32 samples); random inputs: N batches of 4 (default 1)")
    q.add_argument("--json", metavar="OUT", help="also write the report as JSON")
    q.set_defaults(func=cmd_quant_report)
    s = sub.add_parser("serve", help="serve a model over the KServe v2 / Triton HTTP inference protocol",
                       description="Serve MODEL over the Open Inference Protocol (KServe v2) REST API, with "
                                   "Triton's binary tensor extension, until SIGTERM/SIGINT. Logs one JSON line "
                                   "per request on stderr; Prometheus metrics at /metrics.")
    s.add_argument("model", metavar="MODEL_OR_BUNDLE",
                   help=".claw (or .onnx) model, or a bundle from `invoke build` (.tar.gz or its unpacked directory)")
    s.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0, every interface)")
    s.add_argument("--port", type=_port, default=8000, help="port (default: 8000, as Triton; 0 picks a free one)")
    s.add_argument("--name", help="model name in the URLs (default: the bundle's model name, or the file name "
                                  "without its suffix)")
    s.add_argument("--queue", type=_positive_int, default=16,
                   help="inference requests that may wait for a worker; more are answered 503 (default: 16)")
    s.add_argument("--workers", type=_positive_int, default=1,
                   help="inference threads sharing the one loaded model (default: 1)")
    s.set_defaults(func=cmd_serve)
    a = sub.add_parser("agent", help="the device agent: receive bundles over a serial line or ssh, A/B slots",
                       description="Answer a host's `invoke flash` on a serial port (or through ssh): receive a bundle's missing "
                                   "parts, verify its signature and checksums, install it into the inactive slot, "
                                   "health-check it, switch, and (with --serve-port) run `claw serve` on it.")
    a.add_argument("--port", help="serial port or pyserial URL (e.g. /dev/ttyAMA0)")
    a.add_argument("--listen", metavar="HOST:PORT",
                   help="also answer on this TCP address, for `invoke flash --port ssh://…` through an ssh "
                        "port forward; keep it on loopback (e.g. 127.0.0.1:7070)")
    a.add_argument("--root", default="/var/lib/clawdbot", help="state: slots, parts, trusted keys "
                                                               "(default /var/lib/clawdbot)")
    a.add_argument("--baud", type=_positive_int, default=115200, help="line speed (default 115200)")
    a.add_argument("--serve-port", type=_port, default=None, help="run `claw serve` on the active slot here")
    a.set_defaults(func=cmd_agent)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ClawError as e:
        print(f"claw: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `claw info x.claw | head`: the reader left; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
