"""How far a quantized model is from its fp32 original (issue 6): per graph output the cosine similarity, max
absolute and relative L2 error and top-1 agreement (and accuracy, given labels); per quantized node its error,
worst first, so the nodes that hurt most can be kept in fp32 (QuantOptions.keep_fp32); and the two sizes.

The quantizer keeps every value name of the fp32 graph (rewrite.py), so intermediates are compared by name:
both graphs run with the quantized nodes' outputs exposed as extra graph outputs. Each quantized node is
measured on the first batch twice: its output as the quantized model computes it ("total": the error of every
quantized node upstream included), and its own error, the node run alone on the fp32 model's values of its
inputs. Layers are ranked by their own error: that is what keeping one node in fp32 removes, while the total
error of a node downstream of a bad one is mostly the bad one's.

    report = compare(fp32_graph, quant_graph, [feeds, ...], labels)
    print(report.format())
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_open
from ..errors import ClawError
from ..ir.dtypes import FLOAT_TYPES
from ..ir.graph import Graph, Node
from ..session import IOSpec, Session

RANDOM_BATCH = 4   # samples per batch of random inputs (the CLI without --inputs)
FILE_BATCH = 32    # most samples per batch of --inputs files, for a model whose batch dim is symbolic
TOP_LAYERS = 10    # layers shown by format()


# -- the report ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputStats:
    name: str
    shape: tuple[int, ...]              # of the first batch
    cosine: float
    max_abs_error: float
    rel_l2: float                       # ||quant - fp32|| / ||fp32||
    top1_agreement: float | None = None  # fraction of samples whose argmax (last axis) is the same
    fp32_accuracy: float | None = None   # first output only, with labels
    quant_accuracy: float | None = None


@dataclass(frozen=True)
class LayerStats:
    value: str              # the compared value (an output of the node)
    node: str               # the fp32 node's name
    op: str                 # fp32 op
    quant_op: str           # the quantized graph's op(s) computing it, e.g. conv_wq, or matmul_wq+add for a gemm
    cosine: float           # total: as the quantized model computes it
    rel_l2: float
    own_cosine: float | None  # own: the quantized node alone on fp32 inputs (None: it could not be run alone)
    own_rel_l2: float | None

    @property
    def rank_error(self) -> float:
        """What layers are sorted by: the own error where known; NaN ranks worst."""
        e = self.rel_l2 if self.own_rel_l2 is None else self.own_rel_l2
        return math.inf if math.isnan(e) else e


@dataclass(frozen=True)
class QuantReport:
    outputs: tuple[OutputStats, ...]
    layers: tuple[LayerStats, ...]   # worst first
    fp32_bytes: int
    quant_bytes: int
    batches: int
    samples: int                     # rows of the first output over all batches

    @property
    def size_ratio(self) -> float:
        return self.quant_bytes / self.fp32_bytes if self.fp32_bytes else math.nan

    @property
    def fp32_accuracy(self) -> float | None:
        return self.outputs[0].fp32_accuracy if self.outputs else None

    @property
    def quant_accuracy(self) -> float | None:
        return self.outputs[0].quant_accuracy if self.outputs else None

    def to_dict(self) -> dict:
        """JSON-able: non-finite numbers (an all-zero fp32 value's relative error, NaNs) become None."""
        return _jsonable({
            "batches": self.batches, "samples": self.samples,
            "sizes": {"fp32_bytes": self.fp32_bytes, "quant_bytes": self.quant_bytes, "ratio": self.size_ratio},
            "outputs": [dataclasses.asdict(o) for o in self.outputs],
            "layers": [dataclasses.asdict(x) for x in self.layers],
        })

    def format(self, top: int = TOP_LAYERS) -> str:
        lines = [f"quantized vs fp32 on {self.batches} batch(es), {self.samples} sample(s)",
                 f"size: {_mib(self.fp32_bytes)} fp32 -> {_mib(self.quant_bytes)} quantized "
                 f"({_pct(self.size_ratio)} of fp32)", ""]
        lines += _output_table(self.outputs)
        first = self.outputs[0] if self.outputs else None
        if first is not None and first.fp32_accuracy is not None:
            lines.append(f"top-1 accuracy ({first.name}): fp32 {_pct(first.fp32_accuracy)}, "
                         f"quantized {_pct(first.quant_accuracy)}")
        if self.layers:
            lines += ["", f"layers, worst {min(top, len(self.layers))} of {len(self.layers)} on the first batch "
                          f"(own: the node alone on fp32 inputs; total: with every quantized node before it)"]
            lines += _layer_table(self.layers[:top])
        return "\n".join(lines)


def _output_table(outputs: Sequence[OutputStats]) -> list[str]:
    w = max([len("output")] + [len(o.name) for o in outputs])
    lines = [f"{'output':<{w}}  {'cosine':>10}  {'max abs err':>11}  {'rel L2':>9}  {'top-1 agree':>11}"]
    for o in outputs:
        agree = "-" if o.top1_agreement is None else _pct(o.top1_agreement)
        lines.append(f"{o.name:<{w}}  {_f(o.cosine, '.6f'):>10}  {_f(o.max_abs_error, '.3g'):>11}  "
                     f"{_f(o.rel_l2, '.3g'):>9}  {agree:>11}")
    return lines


def _layer_table(layers: Sequence[LayerStats]) -> list[str]:
    lines = [f"{'own rel L2':>10}  {'own cos':>9}  {'total rel L2':>12}  {'total cos':>9}  {'op':<22}  node"]
    for x in layers:
        op = x.op if x.op == x.quant_op else f"{x.op}->{x.quant_op}"
        lines.append(f"{_f(x.own_rel_l2, '.3g'):>10}  {_f(x.own_cosine, '.6f'):>9}  {_f(x.rel_l2, '.3g'):>12}  "
                     f"{_f(x.cosine, '.6f'):>9}  {op:<22}  {x.node or x.value}")
    return lines


def _f(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _pct(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{100 * x:.1f} %"


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


# -- error measures --------------------------------------------------------------------------------------------
@dataclass
class _Sums:
    """Running float64 sums for one value over the batches (no batch is kept): sum a*b, a*a, b*b, (b-a)^2."""

    ab: float = 0.0
    aa: float = 0.0
    bb: float = 0.0
    dd: float = 0.0
    max_abs: float = 0.0

    def add(self, name: str, ref: np.ndarray, got: np.ndarray) -> None:
        if ref.shape != got.shape:
            raise ClawError(f"{name}: the quantized model gives shape {got.shape}, the fp32 model {ref.shape}")
        a = np.asarray(ref, np.float64).ravel()
        b = np.asarray(got, np.float64).ravel()
        d = b - a
        self.ab += float(a @ b)
        self.aa += float(a @ a)
        self.bb += float(b @ b)
        self.dd += float(d @ d)
        if d.size:
            self.max_abs = float(np.max([self.max_abs, np.max(np.abs(d))]))  # np.max keeps a NaN

    def cosine(self) -> float:
        if self.dd == 0.0:
            return 1.0  # identical values (all zeros included), exactly, whatever the rounding of the norms
        norms = math.sqrt(self.aa) * math.sqrt(self.bb)
        return float(np.clip(self.ab / norms, -1.0, 1.0)) if norms > 0 else 0.0

    def rel_l2(self) -> float:
        if self.aa == 0.0:
            return 0.0 if self.dd == 0.0 else math.inf
        return math.sqrt(self.dd / self.aa)


def _sums(name: str, ref: np.ndarray, got: np.ndarray) -> _Sums:
    s = _Sums()
    s.add(name, ref, got)
    return s


# -- comparing the outputs -------------------------------------------------------------------------------------
def compare(fp32: Graph, quant: Graph, inputs: Sequence[dict[str, np.ndarray]], labels: np.ndarray | None = None,
            layers: bool = True) -> QuantReport:
    """Run both graphs on every feed dict of `inputs` (batches) and measure how far `quant` is from `fp32`.

    `labels`: integer classes aligned with the batches' rows concatenated, for the first output's top-1
    accuracy (argmax over its last axis). `layers`: also measure each quantized node on the first batch."""
    _check_same_io(fp32, quant)
    feeds = list(inputs)
    if not feeds:
        raise ClawError("compare: no input batches given")
    plan = _layer_plan(fp32, quant) if layers else []
    compared = [x.value for x in plan]
    boundary = [b for x in plan for b in x.inputs if b not in fp32.inputs]
    fs = Session(_with_outputs(fp32, compared + boundary))
    qs = Session(_with_outputs(quant, compared))
    accs = [_OutputAcc(o, top1=labels is not None and k == 0) for k, o in enumerate(fp32.outputs)]
    first_f = first_q = None
    for i, feed in enumerate(feeds):
        a, b = fs.run(feed), qs.run(feed)
        for acc in accs:
            acc.add(a[acc.name], b[acc.name])
        if i == 0:  # the layers are measured on the first batch only: keep its values
            first_f, first_q = {**feed, **a}, b
    outputs = tuple(acc.stats(labels if k == 0 else None) for k, acc in enumerate(accs))
    layer_stats = sorted((_layer_stats(x, quant, first_f, first_q) for x in plan), key=lambda s: -s.rank_error)
    return QuantReport(outputs, tuple(layer_stats), fp32.param_bytes(), quant.param_bytes(), len(feeds),
                       accs[0].rows if accs else len(feeds))


def _check_same_io(fp32: Graph, quant: Graph) -> None:
    for what, a, b in (("inputs", fp32.inputs, quant.inputs), ("outputs", fp32.outputs, quant.outputs)):
        if list(a) != list(b):
            raise ClawError(f"the models' {what} differ: fp32 {list(a)}, quantized {list(b)}; a quantized model "
                            f"keeps its original's input and output names")


class _OutputAcc:
    """One graph output over the batches: the error sums, and the argmax of both models where top-1 applies
    (rank-2 outputs, and the first output when there are labels)."""

    def __init__(self, name: str, top1: bool):
        self.name, self.top1 = name, top1
        self.sums = _Sums()
        self.shape: tuple[int, ...] | None = None
        self.rows = 0
        self.ref_preds: list[np.ndarray] = []
        self.got_preds: list[np.ndarray] = []

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        if self.shape is None:
            self.shape = tuple(int(d) for d in ref.shape)
        self.rows += ref.shape[0] if ref.ndim else 1
        self.sums.add(self.name, ref, got)
        if ref.ndim == 2 or self.top1:
            if ref.ndim < 2:
                raise ClawError(f"top-1 of output {self.name!r} needs a rank >= 2 (classes on the last axis), it "
                                f"has shape {ref.shape}")
            self.ref_preds.append(np.argmax(ref, axis=-1))
            self.got_preds.append(np.argmax(got, axis=-1))

    def stats(self, labels: np.ndarray | None) -> OutputStats:
        s = self.sums
        stats = OutputStats(self.name, self.shape or (), s.cosine(), s.max_abs, s.rel_l2())
        if not self.ref_preds:
            return stats
        ref, got = np.concatenate(self.ref_preds), np.concatenate(self.got_preds)
        stats = dataclasses.replace(stats, top1_agreement=float(np.mean(ref == got)) if ref.size else math.nan)
        if labels is None:
            return stats
        labels = _check_labels(np.asarray(labels), ref.shape)
        return dataclasses.replace(stats, fp32_accuracy=float(np.mean(ref == labels)),
                                   quant_accuracy=float(np.mean(got == labels)))


def _check_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if labels.dtype.kind not in "iu":
        raise ClawError(f"labels must be integer classes, got {labels.dtype}")
    if labels.shape != shape:
        raise ClawError(f"labels have shape {labels.shape} but the batches give {shape} predictions (one per "
                        f"row of the first output, over all batches)")
    return labels


# -- choosing and measuring the layers ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Layer:
    value: str
    old: Node             # the fp32 producer
    new: Node             # the quantized producer
    nodes: tuple[Node, ...] | None  # the quantized nodes computing `value` from values fp32 also has (None: cannot)
    inputs: tuple[str, ...]         # those values (non-constant inputs of `nodes` not computed by them)


def _layer_plan(fp32: Graph, quant: Graph) -> list[_Layer]:
    """Every float value both graphs produce whose quantized producer was rewritten: another op, other
    attributes, or other weights. Values downstream of a rewritten node only carry its error: not listed."""
    before, after = fp32.producers(), quant.producers()
    known = set(fp32.inputs) | set(before)
    plan = []
    for node in quant.nodes:
        for v in node.outputs:
            old = before.get(v)
            if old is None or not (_is_float(fp32, v) and _is_float(quant, v)):
                continue
            if _rewritten(old, fp32, node, quant):
                nodes, inputs = _segment(v, quant, after, known)
                plan.append(_Layer(v, old, node, nodes, inputs))
    return plan


def _is_float(graph: Graph, value: str) -> bool:
    t = graph.types.get(value)
    return t is not None and t.dtype in FLOAT_TYPES


def _rewritten(old: Node, fp32: Graph, new: Node, quant: Graph) -> bool:
    if old.op != new.op or old.attrs != new.attrs or len(old.inputs) != len(new.inputs):
        return True
    for a, b in zip(old.inputs, new.inputs):
        ca, cb = fp32.constants.get(a), quant.constants.get(b)
        if ca is None and cb is None:
            if a != b:
                return True  # wired to another value
        elif ca is None or cb is None or ca.shape != cb.shape or ca.dtype != cb.dtype or not np.array_equal(ca, cb):
            return True
    return False


def _segment(value: str, quant: Graph, producers: dict[str, Node], known: set[str]
             ) -> tuple[tuple[Node, ...] | None, tuple[str, ...]]:
    """The quantized nodes computing `value` back to values the fp32 model has (one node, or e.g. a gemm's
    matmul_wq + add), in graph order, and those values."""
    picked: dict[int, Node] = {}
    inputs: list[str] = []
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        if not v or v in seen or v in quant.constants:
            continue
        seen.add(v)
        if v in known and v != value:
            inputs.append(v)
            continue
        node = producers.get(v)
        if node is None:
            return None, ()
        picked[id(node)] = node
        stack.extend(node.inputs)
    return tuple(n for n in quant.nodes if id(n) in picked), tuple(dict.fromkeys(inputs))


def _with_outputs(graph: Graph, extra: Sequence[str]) -> Graph:
    """A copy of `graph` that also outputs `extra` (values without a declared type cannot be exposed)."""
    extra = [v for v in extra if v in graph.types]
    return dataclasses.replace(graph, outputs=list(dict.fromkeys([*graph.outputs, *extra])))


def _layer_stats(layer: _Layer, quant: Graph, fp32_values: dict, quant_values: dict) -> LayerStats:
    ref = fp32_values[layer.value]
    total = _sums(layer.value, ref, quant_values[layer.value])
    own = _own_error(layer, quant, fp32_values)
    quant_op = "+".join(n.op for n in layer.nodes) if layer.nodes else layer.new.op  # gemm: matmul_wq+add
    return LayerStats(layer.value, layer.old.name, layer.old.op, quant_op, total.cosine(), total.rel_l2(),
                      None if own is None else own.cosine(), None if own is None else own.rel_l2())


def _own_error(layer: _Layer, quant: Graph, fp32_values: dict) -> _Sums | None:
    """The segment run alone on the fp32 values of its inputs, against the fp32 value it replaces."""
    if layer.nodes is None or any(i not in fp32_values for i in layer.inputs):
        return None
    try:
        got = Session(_segment_graph(layer, quant)).run({i: fp32_values[i] for i in layer.inputs})[layer.value]
    except ClawError:
        return None  # e.g. a node reading an outer value through a subgraph: no own error, the total stands
    return _sums(layer.value, fp32_values[layer.value], got)


def _segment_graph(layer: _Layer, quant: Graph) -> Graph:
    names = {v for n in layer.nodes for v in (*n.inputs, *n.outputs) if v}
    return Graph(f"{quant.name}:{layer.value}", list(layer.inputs), [layer.value], list(layer.nodes),
                 {v: quant.constants[v] for v in names if v in quant.constants},
                 {v: quant.types[v] for v in names if v in quant.types})


# -- the CLI's files (claw quant-report) -------------------------------------------------------------------------
def load_any_graph(path: str | os.PathLike) -> Graph:
    """The graph of a .claw file, or of an .onnx model converted (not quantized) on the way."""
    p = Path(path)
    if not p.is_file():
        raise ClawError(f"{path}: no such file")
    if p.suffix.lower() == ".onnx":
        from ..converter import ModelConverter
        return ModelConverter().convert(str(p)).graph
    from ..ir.clawfile import load_graph
    return load_graph(p)


def input_specs(graph: Graph) -> list[IOSpec]:
    return [IOSpec(n, t.dtype, t.shape) for n, t in graph.input_types()]


def random_feeds(graph: Graph, batches: int, batch: int = RANDOM_BATCH) -> list[dict[str, np.ndarray]]:
    """`batches` feeds of random inputs (symbolic dims `batch`), one seed each, so batches differ."""
    from ..tools.inputs import random_inputs
    return [random_inputs(input_specs(graph), batch=batch, seed=i) for i in range(batches)]


def load_feeds(path: str | os.PathLike, graph: Graph, batches: int | None = None) -> list[dict[str, np.ndarray]]:
    """Inputs from a folder of NAME.npy files or one .npz keyed by input name (a single-input model also takes
    one .npy), each array with a leading sample axis, split into batches: `batches` of them, or by default
    batches of the model's fixed leading dim (of at most FILE_BATCH samples when that dim is symbolic)."""
    p = Path(path)
    specs = input_specs(graph)
    if p.is_dir():
        arrays = {s.name: _load_npy(_npy_in(p, s.name), f"--inputs {s.name}") for s in specs}
    elif p.is_file():
        arrays = _load_archive(p, specs)
    else:
        raise ClawError(f"--inputs {path}: no such file or folder")
    return _split(arrays, specs, batches)


def _npy_in(folder: Path, name: str) -> Path:
    # Names with characters a file name cannot hold are saved as `claw run` writes them: those become "_".
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    for candidate in (folder / f"{name}.npy", folder / f"{safe}.npy"):
        if candidate.is_file():
            return candidate
    raise ClawError(f"--inputs {folder}: no {safe}.npy for the model's input {name!r}")


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ClawError(f"{what}: {path} is not a readable .npy file: {e}") from None


def _load_archive(path: Path, specs: list[IOSpec]) -> dict[str, np.ndarray]:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ClawError(f"--inputs {path}: not a readable .npz or .npy file: {e}") from None
    if isinstance(data, np.ndarray):
        if len(specs) != 1:
            raise ClawError(f"--inputs {path}: one array for a model with {len(specs)} inputs; give an .npz "
                            f"or a folder with {', '.join(s.name + '.npy' for s in specs)}")
        return {specs[0].name: data}
    with data:
        missing = [s.name for s in specs if s.name not in data.files]
        if missing:
            raise ClawError(f"--inputs {path}: no array for input(s) {missing}; it has {data.files}")
        return {s.name: data[s.name] for s in specs}


def _split(arrays: dict[str, np.ndarray], specs: list[IOSpec], batches: int | None) -> list[dict[str, np.ndarray]]:
    counts = {n: a.shape[0] if a.ndim else None for n, a in arrays.items()}
    if None in counts.values() or len(set(counts.values())) != 1:
        raise ClawError(f"--inputs: every array needs the same leading sample axis, got shapes "
                        f"{ {n: a.shape for n, a in arrays.items()} }")
    total = next(iter(counts.values()))
    if batches is None:
        batches = _default_batches(total, specs)
    if not 1 <= batches <= total:
        raise ClawError(f"--batches {batches}: the inputs hold {total} sample(s)")
    parts = {n: np.array_split(a, batches) for n, a in arrays.items()}
    return [{n: parts[n][i] for n in arrays} for i in range(batches)]


def _default_batches(total: int, specs: list[IOSpec]) -> int:
    """Batches of the model's fixed leading dim where it has one, else of at most FILE_BATCH samples."""
    fixed = {s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], int)}
    if len(fixed) == 1:
        size = fixed.pop()
        if size > 0 and total % size == 0:
            return total // size
    return max(1, math.ceil(total / FILE_BATCH))


def load_labels(path: str | os.PathLike) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise ClawError(f"--labels {path}: no such file")
    labels = _load_npy(p, "--labels")
    if labels.dtype.kind not in "iu":
        raise ClawError(f"--labels {path}: integer classes expected, got {labels.dtype}")
    return labels


def check_json_path(path: str | os.PathLike) -> None:
    """Before the runs, so a typo in the folder does not cost them."""
    folder = Path(path).parent
    if not folder.is_dir():
        raise ClawError(f"--json {path}: no such folder {folder}")


def write_json(report: QuantReport, path: str | os.PathLike) -> Path:
    """Atomically: a reader never sees half a report."""
    path = Path(path)
    check_json_path(path)
    try:
        with atomic_open(path, "w") as f:
            json.dump(report.to_dict(), f, indent=2)
            f.write("\n")
    except OSError as e:
        raise ClawError(f"--json {path}: cannot write there: {e.strerror}") from None
    return path
