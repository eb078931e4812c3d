"""Command line for the model zoo: write one benchmark model to an ONNX file.

    python -m clawdbot.tools.zoo resnet50 -o resnet50.onnx [--seed N]
    python -m clawdbot.tools.zoo --list
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import MODELS, build, parameter_count, write_model


def _summary(name: str) -> str:
    doc = MODELS[name].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clawdbot.tools.zoo", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="model to build (see --list)")
    parser.add_argument("-o", "--output", help="where to write the .onnx file")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--list", action="store_true", help="list the available models and exit")
    args = parser.parse_args(argv)

    if args.list:
        width = max(map(len, MODELS))
        for name in MODELS:
            print(f"{name:<{width}}  {_summary(name)}")
        return 0
    if not args.name or not args.output:
        parser.error("a model NAME and -o OUTPUT are required (or --list)")
    if args.name not in MODELS:
        parser.error(f"unknown model {args.name!r}; known models: {', '.join(sorted(MODELS))}")

    model = build(args.name, seed=args.seed)
    try:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        path = write_model(model, args.output)
    except OSError as e:
        print(f"zoo: error: cannot write {args.output}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"wrote {path}: {args.name}, seed {args.seed}, {parameter_count(model) / 1e6:.2f}M parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
