"""`python -m clawdbot.tools.digits -o tests/fixtures/digits`: the digits CNN test fixtures.

Trains, deterministically on the CPU, a small CNN on scikit-learn's bundled digits data set (8x8 grey images of
handwritten digits; no download), exports it to ONNX and writes, atomically, beside each other:

- digits_cnn.onnx: the fp32 model, input "input" [batch,1,8,8] float32 in [0,1], output "logits" [batch,10];
- digits_test.npz: the held-out test split, x float32 [600,1,8,8] and y int64 [600];
- digits_calib.npz: x, 200 training images (float32 [200,1,8,8]) for calibration;
- README.md: how they were made (the command, the torch/scikit-learn versions, torch's fp32 test accuracy).

Only this script needs torch and scikit-learn; the tests read the committed fixtures.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ..atomic import atomic_open

SEED = 0
N_TEST = 600
N_CALIB = 200
EPOCHS = 40
BATCH = 64
LR = 2e-3
COMMAND = "python -m clawdbot.tools.digits -o tests/fixtures/digits"


def _require(name: str):
    import importlib
    try:
        return importlib.import_module(name)
    except ImportError:
        pip_name = {"sklearn": "scikit-learn"}.get(name, name)
        raise SystemExit(f"clawdbot.tools.digits: needs {pip_name} (pip install {pip_name}); it is not installed")


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def load_split():
    """(x_train, y_train, x_test, y_test): images float32 [N,1,8,8] in [0,1], labels int64; a stratified,
    fixed-seed split of 1197 training and 600 test images."""
    datasets = _require("sklearn.datasets")
    model_selection = _require("sklearn.model_selection")
    digits = datasets.load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = model_selection.train_test_split(x, y, test_size=N_TEST, random_state=SEED,
                                                              stratify=y)
    return x_tr, y_tr, x_te, y_te


def build_model(torch):
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(64, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def train(torch, x_tr: np.ndarray, y_tr: np.ndarray):
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    model = build_model(torch)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        order = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            idx = order[i:i + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    model.eval()
    return model


def accuracy(torch, model, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        pred = model(torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean(pred == y))


def export_onnx(torch, model) -> bytes:
    buf = io.BytesIO()
    dummy = torch.zeros(1, 1, 8, 8)
    with warnings.catch_warnings():  # the legacy (TorchScript) exporter warns that it is not the default
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (dummy,), buf, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clawdbot.tools.digits", description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", required=True, type=Path, help="folder for the fixtures (created if missing)")
    args = ap.parse_args(argv)
    torch = _require("torch")
    sklearn = _require("sklearn")

    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = load_split()
    model = train(torch, x_tr, y_tr)
    acc = accuracy(torch, model, x_te, y_te)
    onnx_bytes = export_onnx(torch, model)
    calib = x_tr[:N_CALIB]
    elapsed = time.perf_counter() - t0

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "digits_cnn.onnx": onnx_bytes,
        "digits_test.npz": _npz_bytes(x=x_te, y=y_te),
        "digits_calib.npz": _npz_bytes(x=calib),
    }
    for name, data in files.items():
        _write_atomic(out / name, data)
    lines = [
        "# digits CNN fixtures",
        "",
        "Made by this repository's script, on the CPU, deterministically (fixed seeds):",
        "",
        f"    {COMMAND}",
        "",
        f"- torch {torch.__version__}, scikit-learn {sklearn.__version__}, numpy {np.__version__}",
        f"- data: `sklearn.datasets.load_digits()` (bundled, 1797 8x8 images), pixels / 16 to [0,1], shape "
        f"[N,1,8,8]; stratified `train_test_split(test_size={N_TEST}, random_state={SEED})`: "
        f"{len(x_tr)} training, {len(x_te)} test images",
        "- model: Conv(1->16,3,pad 1)+ReLU, Conv(16->32,3,pad 1)+ReLU, MaxPool 2, Conv(32->64,3,pad 1)+ReLU, "
        "global average pool, Linear(64->64)+ReLU, Linear(64->10)",
        f"- training: Adam lr {LR:g}, {EPOCHS} epochs, batch {BATCH}, cross-entropy, seed {SEED}",
        "- export: `torch.onnx.export(..., dynamo=False, opset_version=17)`, input `input` [batch,1,8,8], "
        "output `logits` [batch,10]",
        f"- **fp32 test accuracy measured by torch: {acc:.4f}** ({round(acc * len(y_te))}/{len(y_te)})",
        "",
        "Files:",
        "",
    ]
    for name, data in files.items():
        lines.append(f"- `{name}` ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}...)")
    lines += [
        "",
        "`digits_test.npz`: x float32 [600,1,8,8], y int64 [600]. `digits_calib.npz`: x, the first "
        f"{N_CALIB} training images, float32 [{N_CALIB},1,8,8], for calibration.",
        "",
        "Rerun the command to regenerate them (it needs torch and scikit-learn; the tests need neither).",
        "",
    ]
    _write_atomic(out / "README.md", "\n".join(lines).encode())
    print(f"digits: torch fp32 test accuracy {acc:.4f}; wrote {', '.join(files)}, README.md to {out} "
          f"in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
