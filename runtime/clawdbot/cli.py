"""`claw`: convert models, inspect .claw files, run them, list the op set.

    claw convert MODEL.onnx -o MODEL.claw
    claw info MODEL.claw
    claw run MODEL.claw --input input=x.npy [-o OUTDIR]
    claw ops
    claw serve MODEL_OR_BUNDLE [--host H] [--port P] [--name NAME] [--queue N] [--workers N]
    claw agent [--port /dev/ttyAMA0] [--listen 127.0.0.1:7070] [--root /var/lib/clawdbot] [--serve-port 8000]

User mistakes and bad files end with one line on stderr (`claw: error: …`) and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_convert(args) -> int:
    from .converter import ModelConverter
    src = Path(args.model)
    out = Path(args.output) if args.output else src.with_suffix(".claw")
    model = ModelConverter(source_framework=args.framework, target_format="claw_ir").convert(str(src))
    model.save(out)
    s = model.summary()
    print(f"{src} -> {out}: {s['nodes']} nodes, {s['params']:,} parameters ({_human(s['param_bytes'])}), "
          f"file {_human(out.stat().st_size)}")
    return 0


def _load_graph(path: str):
    from .ir.clawfile import load_graph
    return load_graph(path)


def cmd_info(args) -> int:
    from .ir.clawfile import read_header
    graph = _load_graph(args.file)
    header = read_header(args.file)
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
    c.set_defaults(func=cmd_convert)
    i = sub.add_parser("info", help="describe a .claw file: ops, parameters, sizes")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)
    r = sub.add_parser("run", help="run a model on .npy inputs and write .npy outputs")
    r.add_argument("model", help=".claw (or .onnx) model")
    r.add_argument("--input", "-i", action="append", metavar="NAME=FILE.npy", help="one per model input")
    r.add_argument("-o", "--output-dir", default=".", help="where to write OUTPUT_NAME.npy (default: .)")
    r.set_defaults(func=cmd_run)
    o = sub.add_parser("ops", help="list the claw op set")
    o.set_defaults(func=cmd_ops)
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
