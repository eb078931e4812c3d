"""Helpers for tests: the onnxruntime oracle, the whole-model error criterion, tiny ONNX models, one-node op
models and their comparison with onnxruntime, random test arrays."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import clawdbot


def make_model(graph: onnx.GraphProto, opset: int, ir_version: int | None = None) -> onnx.ModelProto:
    """A model declaring the lowest IR version its opset needs, as exporters do — not the newest IR the onnx
    package knows, which older onnxruntime releases (the oracle on Python 3.10) refuse."""
    opsets = [helper.make_opsetid("", opset)]
    if ir_version is None:
        ir_version = helper.find_min_ir_version_for(opsets)
    return helper.make_model(graph, opset_imports=opsets, ir_version=ir_version)


def ort_run(model, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    data = model if isinstance(model, (str, bytes)) else model.SerializeToString()
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def assert_matches_range(ours: np.ndarray, ref: np.ndarray, rel: float = 1e-4) -> None:
    """max |ours - ref| <= rel * range(ref): the fp32 criterion for whole models."""
    span = float(np.max(ref) - np.min(ref)) or 1.0
    err = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
    assert err <= rel * span, f"max abs error {err:.3g} > {rel:g} x output range {span:.3g}"


def add_relu(batch="N", opset: int = 17) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.linspace(-2, 2, 4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["s"], name="add0"),
         helper.make_node("Relu", ["s"], ["y"], name="relu0")],
        "add_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [w])
    return make_model(graph, opset)


def with_unknown_ops() -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("FancyOp", ["a"], ["b"], name="fancy1"),
             helper.make_node("FancyOp", ["x"], ["c"], name="fancy2"),
             helper.make_node("Add", ["b", "c"], ["d"], name="after"),
             helper.make_node("WeirdOp", ["d"], ["y"], name="weird")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    return make_model(graph, 17)


# -- one-node op models, compared with onnxruntime ---------------------------------------------------------------
Oracle = Callable[[onnx.ModelProto, dict[str, np.ndarray]], list[np.ndarray]]


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def feeds_of(inputs: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """The arrays of `inputs` that are given (None stands for an omitted optional input)."""
    return {n: v for n, v in inputs.items() if v is not None}


def graph_model(nodes: Sequence[onnx.NodeProto], inputs: Mapping[str, np.ndarray | None],
                consts: Mapping[str, np.ndarray | None] | None = None, *, outputs: Sequence[str] = ("y",),
                opset: int = 17, ir_version: int | None = None,
                input_shapes: Mapping[str, Sequence[int | str | None]] | None = None,
                name: str = "g") -> onnx.ModelProto:
    """A model of `nodes`: `inputs` are graph inputs, declared with each array's dtype and shape (or the shape in
    `input_shapes`, e.g. with symbolic dims), `consts` initializers; None values are left out. The outputs are
    declared without a type ("" names an omitted optional output and is skipped)."""
    input_shapes = input_shapes or {}
    graph = helper.make_graph(
        list(nodes), name,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), input_shapes.get(n, v.shape))
         for n, v in feeds_of(inputs).items()],
        [helper.make_value_info(o, onnx.TypeProto()) for o in outputs if o],
        [numpy_helper.from_array(v, n) for n, v in feeds_of(consts or {}).items()])
    return make_model(graph, opset, ir_version)


def one_node_model(op: str, inputs: Mapping[str, np.ndarray | None],
                   consts: Mapping[str, np.ndarray | None] | None = None, *, n_out: int = 1,
                   outputs: Sequence[str] | None = None, node_inputs: Sequence[str] | None = None,
                   opset: int = 17, ir_version: int | None = None,
                   input_shapes: Mapping[str, Sequence[int | str | None]] | None = None, **attrs) -> onnx.ModelProto:
    """A model of one `op` node named "<op>_node" (lower case) with attributes `attrs`.

    Its inputs are the names of `inputs` (graph inputs) then of `consts` (initializers), in order; a None value is
    an omitted optional input ("" in the node). `node_inputs` gives the node's input names instead, for orders
    that mix the two. Its outputs are "y" (n_out=1) or "y0".."y<n_out - 1>", or the names in `outputs` ("": an
    omitted optional output). The remaining arguments are graph_model's."""
    consts = consts or {}
    if node_inputs is None:
        node_inputs = [n if v is not None else "" for n, v in [*inputs.items(), *consts.items()]]
    if outputs is None:
        outputs = ["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, list(node_inputs), list(outputs), name=f"{op.lower()}_node", **attrs)
    return graph_model([node], inputs, consts, outputs=outputs, opset=opset, ir_version=ir_version,
                       input_shapes=input_shapes, name=op)


def reference_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The onnx reference evaluator: the oracle where onnxruntime has no kernel for an op, opset or dtype."""
    from onnx.reference import ReferenceEvaluator
    return ReferenceEvaluator(model).run(None, feeds)


def cast_twin(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], src, dst
              ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """`model` and `feeds` with every `src`-typed graph input, graph output, initializer and feed made `dst`."""
    src, dst = np.dtype(src), np.dtype(dst)
    elem_src, elem_dst = helper.np_dtype_to_tensor_dtype(src), helper.np_dtype_to_tensor_dtype(dst)
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    for vi in [*twin.graph.input, *twin.graph.output]:
        if vi.type.tensor_type.elem_type == elem_src:
            vi.type.tensor_type.elem_type = elem_dst
    for k, t in enumerate(twin.graph.initializer):
        if t.data_type == elem_src:
            twin.graph.initializer[k].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(dst), t.name))
    return twin, {n: v.astype(dst) if v.dtype == src else v for n, v in feeds.items()}


def assert_matches_ort(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray | None], *, rtol: float = 0.0,
                       atol: float = 0.0, oracle: Oracle = ort_run,
                       cast_for_ort: tuple[str, str] | None = None) -> dict[str, np.ndarray]:
    """Run `model` in clawdbot, with kernel checks on, and in onnxruntime (`oracle`); assert that every graph
    output has the same dtype, shape and values (|ours - ref| <= atol + rtol * |ref|, computed in float64; NaN
    where the oracle has NaN). rtol = atol = 0 (the default) asks for identical values. Feeds given as None are
    left out. Returns clawdbot's outputs.

    cast_for_ort=(src, dst), where the oracle has no `src` kernel: it runs `model` with every `src` tensor made
    `dst` (see cast_twin), and our outputs must be `src` where the oracle's are `dst`."""
    feeds = feeds_of(feeds)
    sess = clawdbot.load(model)
    assert sess.driver.check, "tests run with CLAWDBOT_CHECK=1 (conftest.py)"
    ours = sess.run(feeds)
    names = [o.name for o in model.graph.output]
    assert list(ours) == names, f"outputs {list(ours)}, expected {names}"
    if cast_for_ort is None:
        ref = oracle(model, feeds)
    else:
        ref = oracle(*cast_twin(model, feeds, *cast_for_ort))
    assert len(ref) == len(names), f"the oracle gave {len(ref)} outputs for {names}"
    for name, r in zip(names, ref):
        got = ours[name]
        want = np.dtype(cast_for_ort[0]) if cast_for_ort and r.dtype == cast_for_ort[1] else r.dtype
        assert got.dtype == want and got.shape == r.shape, f"{name}: {got.dtype}{got.shape} vs {want}{r.shape}"
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(got, r, err_msg=name)
        else:
            np.testing.assert_allclose(got.astype(np.float64), r.astype(np.float64), rtol=rtol, atol=atol,
                                       equal_nan=True, err_msg=name)
    return ours


# -- random test arrays (each file passes its own seeded generator, so its data do not depend on other files) --
def rand(rng: np.random.Generator, shape, dtype="float32", lo: float = -1.0, hi: float = 1.0, *,
         nonzero: bool = False) -> np.ndarray:
    """Uniform values in [lo, hi) as `dtype`: rounded for integers (lo raised to 0 for unsigned types), fair
    coin flips for bool. nonzero: zeros become ones (e.g. for divisors)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind == "u":
        lo = max(lo, 0)
    x = rng.uniform(lo, hi, shape)
    x = x.astype(dtype) if dtype.kind == "f" else np.round(x).astype(dtype)
    if nonzero:
        x = np.where(x == 0, np.ones((), dtype), x)
    return np.asarray(x, dtype=dtype)


def randn(rng: np.random.Generator, shape, dtype="float32") -> np.ndarray:
    """Standard normal values as `dtype`."""
    return np.asarray(rng.standard_normal(shape).astype(dtype))
