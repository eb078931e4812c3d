"""Runs the onnx package's node test cases (1884 in onnx 1.23) through clawdbot and counts passes.

    python -m clawdbot.tools.onnx_conformance [--filter REGEX] [--write FILE] [--show-failures]

The pytest suite runs only the cases listed in tests/importers/onnx/onnx_node_passing.txt (so a regression
fails CI); this runner tries them all, to find what newly passes and why the rest fail.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import warnings

import numpy as np


def node_cases():
    import onnx.backend.test.loader as loader
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loader.load_node_model_tests()


def run_case(case) -> str | None:
    """None when the case passes, else a one-line reason."""
    from onnx.backend.test.runner import Runner, _normalize_tensor  # type: ignore[attr-defined]

    from ..errors import UnsupportedOpsError
    from ..importers.onnx.backend import ClawBackend
    try:
        rep = ClawBackend.prepare(case.model)
        for inputs, ref_outputs in case.data_sets:
            outs = rep.run([_normalize_tensor(x) for x in inputs])
            Runner.assert_similar_outputs([_normalize_tensor(x) for x in ref_outputs], list(outs),
                                          rtol=case.rtol, atol=case.atol)
    except UnsupportedOpsError as e:
        return "unsupported: " + "; ".join(sorted(e.unsupported))
    except AssertionError as e:
        return "mismatch: " + str(e).strip().splitlines()[0][:200] if str(e).strip() else "mismatch"
    except Exception as e:  # noqa: BLE001 - the runner reports every failure kind
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filter", default=None, help="only cases whose name matches this regex")
    ap.add_argument("--write", default=None, help="write the names of passing cases to this file")
    ap.add_argument("--show-failures", action="store_true", help="print each failing case and why")
    args = ap.parse_args(argv)
    # Same conditions as the pytest suite: every kernel output checked against its inferred type.
    os.environ["CLAWDBOT_CHECK"] = "1"
    cases = node_cases()
    total = len(cases)
    if args.filter:
        cases = [c for c in cases if re.search(args.filter, c.name)]
    passed, reasons = [], collections.Counter()
    np.seterr(all="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for case in cases:
            why = run_case(case)
            if why is None:
                passed.append(case.name)
            else:
                reasons[why.split(":")[0] if why.startswith("unsupported") else why[:120]] += 1
                if args.show_failures:
                    print(f"FAIL {case.name}: {why}")
    if args.write:
        with open(args.write, "w") as f:
            f.write("# ONNX backend node cases clawdbot passes (regenerate: python -m "
                    "clawdbot.tools.onnx_conformance --write FILE)\n")
            f.writelines(n + "\n" for n in sorted(passed))
    print(f"ONNX node cases: {len(passed)} passed of {len(cases)} run ({total} in the suite)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
