"""`python -m clawdbot.tools.check MODEL.claw REFERENCE.onnx`: run a converted model and onnxruntime on the
same random inputs and report the largest difference relative to the output range (the demo's last step)."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from ..errors import ClawError
from .inputs import random_inputs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("claw_model")
    ap.add_argument("onnx_model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max error as a fraction of output range")
    args = ap.parse_args(argv)
    import onnxruntime as ort

    from .. import load
    try:
        t0 = time.perf_counter()
        sess = load(args.claw_model)
        feeds = random_inputs(sess.inputs, batch=args.batch)
        ours = sess.run(feeds)
        elapsed = time.perf_counter() - t0
    except ClawError as e:
        print(f"check: error: {e}", file=sys.stderr)
        return 2
    ref = ort.InferenceSession(args.onnx_model, providers=["CPUExecutionProvider"]).run(None, feeds)
    worst = 0.0
    for spec, r in zip(sess.outputs, ref):
        o = ours[spec.name]
        span = float(np.max(r) - np.min(r)) or 1.0
        err = float(np.max(np.abs(o.astype(np.float64) - r))) / span
        worst = max(worst, err)
        print(f"{spec.name}: {o.dtype}{list(o.shape)}  max error {err:.2e} of output range")
    print(f"load + first run: {elapsed * 1e3:.0f} ms; "
          f"{'MATCHES' if worst <= args.tolerance else 'DIFFERS FROM'} onnxruntime (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
