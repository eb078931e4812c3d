"""A small graph-building helper on top of ``onnx.helper`` for the model zoo.

The zoo builds its benchmark models from code rather than downloading them, so
every model is reproducible from a seed alone. This module holds the shared
plumbing: unique naming, deterministic weight initialisation and the handful of
layer idioms (conv + BatchNorm + activation, linear layers, LayerNorm) written
the way ``torch.onnx`` writes them, so the graphs exercise the same patterns
the runtime meets in exported models.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8
# Symbolic batch dimension shared by every zoo model's inputs and outputs.
BATCH = "batch"
# Name prefix of non-weight constants, the same one torch.onnx gives them.
CONST_PREFIX = "onnx::"

ACTIVATIONS = ("relu", "relu6", "hardswish", "hardsigmoid", "silu", "sigmoid")
HARDSWISH_STYLES = ("hardsigmoid_mul", "op", "clip")


def _np_sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def _np_hardsigmoid(v: np.ndarray) -> np.ndarray:
    return np.clip(v / 6.0 + 0.5, 0.0, 1.0)


# numpy twins of the activations, used only to predict activation scale.
_NP_ACT = {
    "relu": lambda v: np.maximum(v, 0.0),
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
    "sigmoid": _np_sigmoid,
    "silu": lambda v: v * _np_sigmoid(v),
    "hardsigmoid": _np_hardsigmoid,
    "hardswish": lambda v: v * _np_hardsigmoid(v),
}
# Gauss-Hermite nodes/weights for expectations over a standard normal.
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


@dataclass(frozen=True)
class Stats:
    """Expected element mean and variance of a tensor (for weight scaling only)."""

    mean: float = 0.0
    var: float = 1.0

    @property
    def mean_square(self) -> float:
        return self.mean**2 + self.var


def activation_stats(kind: str, x: Stats) -> Stats:
    """Mean/variance of f(x) for x ~ N(x.mean, x.var).

    Tracking the mean matters: ReLU(shortcut + branch) with a non-negative
    shortcut keeps far more than half the energy a zero-mean model predicts.
    """
    y = _NP_ACT[kind](x.mean + math.sqrt(x.var) * _GH_NODES)
    mean = float((_GH_WEIGHTS * y).sum())
    return Stats(mean, max(float((_GH_WEIGHTS * y**2).sum()) - mean**2, 1e-12))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (MobileNet/EfficientNet rule).

    Never rounds down by more than 10%, which is what the reference
    implementations do; the parameter counts depend on matching it exactly.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def parameter_count(model: onnx.ModelProto) -> int:
    """Number of trainable parameters, counted the way ``torch`` counts them.

    BatchNorm running statistics are buffers, not parameters, in torch; they
    are left out so the totals compare directly with published figures.
    Integer initializers (shape constants, position ids) are not weights
    either, nor are the ``onnx::`` constants (Clip bounds, scalars) that
    exporters and :meth:`GraphBuilder.const` create.
    """
    buffers = set()
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            buffers.update(node.input[3:5])
    total = 0
    for init in model.graph.initializer:
        if init.name in buffers or init.data_type != TensorProto.FLOAT or init.name.startswith(CONST_PREFIX):
            continue
        total += math.prod(init.dims)
    return total


class GraphBuilder:
    """Accumulates nodes and initializers, then assembles a checked ModelProto.

    Names follow torch conventions: initializers are dotted state-dict style
    keys built from the current scope (``layer1.0.conv1.weight``), node names
    are slash paths (``/layer1/0/conv1/Conv``). Every name is made unique, so
    architecture code never has to worry about collisions.

    Weight scale: random BatchNorm statistics do not normalise anything, so a
    plain He init lets the signal drift (HardSwish, SiLU and SE gates shrink
    it layer after layer) until the constant BN offsets dominate and every
    input gives the same logits. The builder therefore tracks the expected
    mean and variance of the tensors it creates (:class:`Stats`) and scales
    each conv/linear weight so its output has unit variance - He init
    generalised to any activation (for a zero-mean input to ReLU it is
    exactly He's sqrt(2 / fan_in)).
    """

    def __init__(self, name: str, *, seed: int = 0, doc: str = "") -> None:
        self.name = name
        self.doc = doc
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._scope: list[str] = []
        self._taken: set[str] = set()
        self._consts: dict[tuple, str] = {}
        # Expected statistics of tracked values; untracked ones count as N(0, 1).
        self._stats: dict[str, Stats] = {}

    # ----------------------------------------------------------------- naming
    @contextlib.contextmanager
    def scope(self, name: str | int) -> Iterator[None]:
        """Nest subsequent names under ``name`` (like a torch submodule)."""
        self._scope.append(str(name))
        try:
            yield
        finally:
            self._scope.pop()

    def _unique(self, name: str) -> str:
        candidate, n = name, 0
        while candidate in self._taken:
            n += 1
            candidate = f"{name}_{n}"
        self._taken.add(candidate)
        return candidate

    # ------------------------------------------------------------ graph edges
    def stats(self, value: str) -> Stats:
        return self._stats.get(value, Stats())

    def track(self, value: str, stats: Stats) -> str:
        self._stats[value] = stats
        return value

    def add_input(self, name: str, elem_type: int, shape: Sequence[int | str]) -> str:
        self._taken.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def add_output(self, value: str, name: str, elem_type: int, shape: Sequence[int | str]) -> str:
        """Expose ``value`` as a graph output called ``name``.

        The producing node's output is renamed (consumers follow), so the graph
        ends the way an exported one does, without a trailing Identity.
        """
        if value != name:
            if name in self._taken:
                raise ValueError(f"output name {name!r} is already used in the graph")
            self._taken.add(name)
            for node in self.nodes:
                for slots in (node.input, node.output):
                    for i, ref in enumerate(slots):
                        if ref == value:
                            slots[i] = name
            if value in self._stats:
                self._stats[name] = self._stats.pop(value)
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def param(self, name: str, array: np.ndarray) -> str:
        """Add a weight initializer named after the current scope."""
        full = self._unique(".".join([*self._scope, name]))
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), full))
        return full

    def const(self, value, dtype=np.float32) -> str:
        """A small constant (shape pieces, scalars); identical ones are shared.

        torch.onnx emits these as Constant nodes; initializers are equivalent
        for every consumer and keep the graph shorter.
        """
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._unique(f"{CONST_PREFIX}Const_{len(self._consts)}")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def op(
        self,
        op_type: str,
        inputs: Sequence[str],
        *,
        name: str | None = None,
        outputs: int = 1,
        output_names: Sequence[str] | None = None,
        **attrs,
    ) -> str | list[str]:
        """Append one node; returns its output name (or list of names)."""
        path = [*self._scope, name] if name else list(self._scope)
        node_name = self._unique("/" + "/".join([*path, op_type]))
        if output_names is None:
            output_names = [f"{node_name}_output_{i}" for i in range(outputs)]
        for out in output_names:
            self._taken.add(out)
        self.nodes.append(
            helper.make_node(op_type, list(inputs), list(output_names), name=node_name, **attrs)
        )
        return output_names[0] if len(output_names) == 1 else list(output_names)

    # ------------------------------------------------------------ init helpers
    def normal(self, shape: Sequence[int], std: float) -> np.ndarray:
        return self.rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(std)

    def scaled_normal(self, shape: Sequence[int], fan_in: int, input_mean_square: float) -> np.ndarray:
        """Weights giving a unit-variance output for inputs of the given mean square."""
        return self.normal(shape, 1.0 / math.sqrt(fan_in * input_mean_square))

    # ------------------------------------------------------------ CNN layers
    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int,
        *,
        stride: int = 1,
        groups: int = 1,
        padding: int | None = None,
        bias: bool = False,
        name: str = "conv",
        centred: bool = False,
    ) -> str:
        """Conv2d with unit-variance output (see the class docstring).

        ``centred`` makes every filter sum to zero (weight standardisation).
        Networks without BatchNorm need it: otherwise each filter passes on
        the positive mean of its ReLU input as a fixed per-channel offset,
        and after a dozen layers those offsets drown the input-dependent part.
        """
        fan_in = cin // groups * kernel * kernel
        xs = self.stats(x)
        if centred:
            weight = self.scaled_normal((cout, cin // groups, kernel, kernel), fan_in, xs.var)
            weight -= weight.mean(axis=(1, 2, 3), keepdims=True)
        else:
            weight = self.scaled_normal((cout, cin // groups, kernel, kernel), fan_in, xs.mean_square)
        w = self.param(f"{name}.weight", weight)
        inputs = [x, w]
        if bias:
            inputs.append(self.param(f"{name}.bias", self.normal((cout,), 0.01)))
        pad = kernel // 2 if padding is None else padding
        # torch.onnx always writes every Conv attribute explicitly; so do we.
        y = self.op(
            "Conv",
            inputs,
            name=name,
            dilations=[1, 1],
            group=groups,
            kernel_shape=[kernel, kernel],
            pads=[pad] * 4,
            strides=[stride, stride],
        )
        return self.track(y, Stats(0.0, 1.0))

    def batchnorm(self, x: str, channels: int, *, name: str = "bn", eps: float = 1e-5, gamma: float = 1.0) -> str:
        """Inference BatchNorm with random but well-conditioned statistics.

        ``gamma`` scales the affine weight; residual branches pass a small one
        so that summing 16 blocks does not blow the activations up (the same
        idea as torchvision's ``zero_init_residual``, without being degenerate).
        """
        c = (channels,)
        g = (gamma * self.rng.uniform(0.8, 1.2, c)).astype(np.float32)
        b = self.normal(c, 0.1)
        m = self.normal(c, 0.1)
        # var > 0.5 keeps 1/sqrt(var) bounded, so no channel is amplified wildly.
        v = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
        inputs = [x]
        for suffix, arr in (("weight", g), ("bias", b), ("running_mean", m), ("running_var", v)):
            inputs.append(self.param(f"{name}.{suffix}", arr))
        # torch's momentum m is exported as ONNX momentum 1 - m.
        y = self.op("BatchNormalization", inputs, name=name, epsilon=eps, momentum=0.9)
        # Per channel y = g * (x - m) / sqrt(v) + b; pool the channels into one
        # distribution (channel means spread out and add to the variance).
        xs = self.stats(x)
        channel_mean = g * (xs.mean - m) / np.sqrt(v) + b
        var = float(np.mean(g**2 * xs.var / v) + np.var(channel_mean))
        return self.track(y, Stats(float(np.mean(channel_mean)), var))

    def act(self, x: str, kind: str | None, *, name: str | None = None, hardswish: str = "hardsigmoid_mul") -> str:
        """Activation written as exporters write it.

        * relu6     -> Clip(0, 6) with min/max as inputs (opset >= 11 form)
        * silu      -> Sigmoid + Mul (torch has no ONNX SiLU op)
        * hardsigmoid -> HardSigmoid(alpha=1/6, beta=0.5): torch's definition,
          *not* the ONNX default alpha of 0.2
        * hardswish -> ``hardswish`` picks the style: ``hardsigmoid_mul``
          (x * HardSigmoid(x), torch's decomposition), ``op`` (the opset-14
          HardSwish op) or ``clip`` (x * Clip(x + 3, 0, 6) / 6, the
          TF/Keras-converter style).
        """
        if kind is None:
            return x
        y = self._act(x, kind, name, hardswish)
        return self.track(y, activation_stats(kind, self.stats(x)))

    def _act(self, x: str, kind: str, name: str | None, hardswish: str) -> str:
        if kind == "relu":
            return self.op("Relu", [x], name=name)
        if kind == "relu6":
            return self.op("Clip", [x, self.const(0.0), self.const(6.0)], name=name)
        if kind == "sigmoid":
            return self.op("Sigmoid", [x], name=name)
        if kind == "silu":
            return self.op("Mul", [x, self.op("Sigmoid", [x], name=name)], name=name)
        if kind == "hardsigmoid":
            return self.op("HardSigmoid", [x], name=name, alpha=1.0 / 6.0, beta=0.5)
        if kind == "hardswish":
            if hardswish == "op":
                return self.op("HardSwish", [x], name=name)
            if hardswish == "hardsigmoid_mul":
                gate = self.op("HardSigmoid", [x], name=name, alpha=1.0 / 6.0, beta=0.5)
                return self.op("Mul", [x, gate], name=name)
            if hardswish == "clip":
                shifted = self.op("Add", [x, self.const(3.0)], name=name)
                clipped = self.op("Clip", [shifted, self.const(0.0), self.const(6.0)], name=name)
                return self.op("Div", [self.op("Mul", [x, clipped], name=name), self.const(6.0)], name=name)
            raise ValueError(f"unknown hardswish style {hardswish!r}; expected one of {HARDSWISH_STYLES}")
        raise ValueError(f"unknown activation {kind!r}; expected one of {ACTIVATIONS}")

    def conv_bn_act(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int,
        *,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu",
        eps: float = 1e-5,
        gamma: float = 1.0,
        conv_name: str = "0",
        bn_name: str = "1",
        hardswish: str = "hardsigmoid_mul",
    ) -> str:
        y = self.conv(x, cin, cout, kernel, stride=stride, groups=groups, name=conv_name)
        y = self.batchnorm(y, cout, name=bn_name, eps=eps, gamma=gamma)
        return self.act(y, act, hardswish=hardswish)

    def squeeze_excite(
        self,
        x: str,
        channels: int,
        squeezed: int,
        *,
        inner: str = "relu",
        gate: str = "sigmoid",
        hardswish: str = "hardsigmoid_mul",
        name: str = "se",
    ) -> str:
        """Squeeze-and-excitation: pool, two 1x1 convs with bias, gate, rescale."""
        with self.scope(name):
            s = self.track(self.op("GlobalAveragePool", [x], name="avgpool"), self.stats(x))
            s = self.act(self.conv(s, channels, squeezed, 1, bias=True, name="fc1"), inner, hardswish=hardswish)
            s = self.act(self.conv(s, squeezed, channels, 1, bias=True, name="fc2"), gate, hardswish=hardswish)
            xs, gs = self.stats(x), self.stats(s)
            mean = xs.mean * gs.mean
            return self.track(self.op("Mul", [x, s]), Stats(mean, xs.mean_square * gs.mean_square - mean**2))

    def add(self, a: str, b: str) -> str:
        """Residual Add (tracked as the sum of independent branches)."""
        sa, sb = self.stats(a), self.stats(b)
        return self.track(self.op("Add", [a, b]), Stats(sa.mean + sb.mean, sa.var + sb.var))

    def maxpool(
        self, x: str, kernel: int, stride: int, *, padding: int = 0, ceil_mode: bool = False, name: str | None = None
    ) -> str:
        y = self.op(
            "MaxPool",
            [x],
            name=name,
            ceil_mode=int(ceil_mode),
            kernel_shape=[kernel, kernel],
            pads=[padding] * 4,
            strides=[stride, stride],
        )
        # The max of a 3x3 window sits well above the window's mean (for 9
        # Gaussians, 1.5 sigma). Its spread barely shrinks in practice because
        # neighbouring values are correlated, so the variance is kept.
        xs = self.stats(x)
        return self.track(y, Stats(xs.mean + 1.5 * math.sqrt(xs.var), xs.var))

    def pool_flatten(self, x: str) -> str:
        """AdaptiveAvgPool2d(1) + flatten, as torch.onnx exports it."""
        y = self.op("Flatten", [self.op("GlobalAveragePool", [x], name="avgpool")], axis=1)
        # Pooling keeps the mean; the variance left is mostly between
        # channels, so keeping it is the conservative estimate.
        return self.track(y, self.stats(x))

    def linear(self, x: str, fin: int, fout: int, *, name: str = "fc") -> str:
        """nn.Linear on a 2-D input: Gemm with a [out, in] weight and transB=1."""
        w = self.param(f"{name}.weight", self.scaled_normal((fout, fin), fin, self.stats(x).mean_square))
        b = self.param(f"{name}.bias", self.normal((fout,), 0.01))
        return self.track(self.op("Gemm", [x, w, b], name=name, alpha=1.0, beta=1.0, transB=1), Stats())

    # -------------------------------------------------------- sequence layers
    def dense(self, x: str, fin: int, fout: int, *, name: str, gain: float = 1.0) -> str:
        """nn.Linear on an N-D input: MatMul with a [in, out] weight, then Add.

        ``gain`` scales the output's standard deviation away from 1.
        """
        w = self.param(f"{name}.weight", gain * self.scaled_normal((fin, fout), fin, self.stats(x).mean_square))
        b = self.param(f"{name}.bias", self.normal((fout,), 0.02))
        return self.track(self.op("Add", [b, self.op("MatMul", [x, w], name=name)], name=name), Stats(0.0, gain**2))

    def layernorm(
        self, x: str, dim: int, *, name: str = "LayerNorm", eps: float = 1e-12, decomposed: bool = False
    ) -> str:
        """Last-axis LayerNorm: the opset-17 op, or the pre-17 exporter expansion."""
        gamma = self.param(f"{name}.weight", (1.0 + self.normal((dim,), 0.05)).astype(np.float32))
        beta = self.param(f"{name}.bias", self.normal((dim,), 0.05))
        if not decomposed:
            return self.op("LayerNormalization", [x, gamma, beta], name=name, axis=-1, epsilon=eps)
        with self.scope(name):
            mean = self.op("ReduceMean", [x], axes=[-1], keepdims=1)
            centred = self.op("Sub", [x, mean])
            var = self.op("ReduceMean", [self.op("Pow", [centred, self.const(2.0)])], axes=[-1], keepdims=1)
            std = self.op("Sqrt", [self.op("Add", [var, self.const(eps)])])
            normed = self.op("Div", [centred, std])
            return self.op("Add", [self.op("Mul", [normed, gamma]), beta])

    # ------------------------------------------------------------------ finish
    def finish(self, *, check: bool = True) -> onnx.ModelProto:
        """Assemble the ModelProto (opset 17, IR 8) and run the full checker."""
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="clawdbot.zoo",
            producer_version="1",
            doc_string=self.doc,
        )
        # make_model stamps the newest IR version onnx knows; pin it so older
        # runtimes (and the runtime's own importer) accept the file.
        model.ir_version = IR_VERSION
        if check:
            onnx.checker.check_model(model, full_check=True)
        return model
