"""ONNX model -> claw_ir Graph.

Loading failures (missing, truncated, not protobuf) raise ModelImportError naming the file. Every node is then
handed to its versioned handler; nodes whose op type has no handler, or whose handler says `Unsupported`, are
collected and reported together in ONE UnsupportedOpsError before anything runs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ClawError, GraphValidationError, ModelImportError, UnsupportedOpsError
from ...ir.graph import Dim, Graph, TensorType
from ...ir.infer import merge
from .builder import Builder, OnnxNode, Unsupported

try:
    import onnx
    from onnx import numpy_helper
except ImportError:  # pragma: no cover - exercised only without the extra
    onnx = None

DEFAULT_DOMAINS = ("", "ai.onnx")
MIN_OPSET = 7


def _require_onnx():
    if onnx is None:
        raise ModelImportError("importing ONNX models needs the onnx package: pip install 'clawdbot[onnx]'")


def load_model(source, where: str | None = None) -> "onnx.ModelProto":
    _require_onnx()
    if isinstance(source, onnx.ModelProto):
        return source
    path = Path(source)
    where = where or str(path)
    if not path.exists():
        raise ModelImportError(f"{where}: no such file")
    if path.is_dir():
        raise ModelImportError(f"{where}: is a directory, expected an .onnx file")
    if path.stat().st_size == 0:
        raise ModelImportError(f"{where}: file is empty")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelImportError(f"{where}: not a readable ONNX model (truncated or corrupted?): "
                               f"{type(e).__name__}: {e}") from None
    if not model.graph.node and not model.graph.output:
        raise ModelImportError(f"{where}: ONNX model has an empty graph (truncated file?)")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as e:
        raise ModelImportError(f"{where}: cannot load external tensor data: {e}") from None
    return model


def _dtype_of(elem_type: int, what: str) -> str:
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        name = np.dtype(np_dtype).name
    except Exception:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type else "undefined"
    from ...ir.dtypes import DTYPES
    if name not in DTYPES:
        raise Unsupported(f"{what} has element type {name}, which clawdbot does not support")
    return name


def _value_type(vi, what: str) -> TensorType:
    t = vi.type
    if not t.HasField("tensor_type"):
        raise Unsupported(f"{what} is not a tensor (sequence/map/optional types are not supported)")
    tt = t.tensor_type
    dtype = _dtype_of(tt.elem_type, what)
    if not tt.HasField("shape"):
        return TensorType(dtype, None)
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return TensorType(dtype, tuple(dims))


def _to_array(tensor, what: str) -> np.ndarray:
    _dtype_of(tensor.data_type, what)
    try:
        return np.asarray(numpy_helper.to_array(tensor), order="C")
    except Exception as e:
        raise ModelImportError(f"{what}: malformed tensor data: {e}") from None


def attributes(node) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise Unsupported(f"attribute {a.name!r} refers to a function attribute")
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        elif isinstance(v, onnx.TensorProto):
            v = _to_array(v, f"attribute {a.name!r} of node {node.name!r}")
        elif isinstance(v, (onnx.GraphProto, onnx.SparseTensorProto)) or (
                isinstance(v, list) and v and not isinstance(v[0], (int, float, str))):
            raise Unsupported(f"attribute {a.name!r} holds a subgraph or sparse tensor")
        out[a.name] = v
    return out


def _constant_value(attrs: dict[str, Any]) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise Unsupported(f"Constant with attribute(s) {sorted(attrs)} (string/sparse constants)")


def import_onnx(source, *, name: str | None = None) -> Graph:
    """Convert an ONNX model (path or ModelProto) to a claw_ir Graph (inferred, not yet validated)."""
    from .ops import REGISTRY

    where = name or (str(source) if not (onnx and isinstance(source, onnx.ModelProto)) else "<model>")
    model = load_model(source, where)
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset is None:
        # Legal when every node is from another domain; default-domain ops then get the newest semantics.
        opset = onnx.defs.onnx_opset_version()
    if opset < MIN_OPSET:
        raise ModelImportError(f"{where}: opset {opset} is older than the oldest supported ({MIN_OPSET}); "
                               f"upgrade it with onnx.version_converter")
    g = model.graph
    graph = Graph(name=g.name or Path(where).stem,
                  metadata={"source": "onnx", "opset": opset, "producer": model.producer_name,
                            "producer_version": model.producer_version})
    reserved = {v for n in g.node for v in (*n.input, *n.output)} | {i.name for i in g.input} | {
        i.name for i in g.initializer}
    b = Builder(graph, opset, reserved)
    unsupported: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}

    def refuse(op: str, who: str, why: str | None = None):
        unsupported.setdefault(op, []).append(who)
        if why and op not in reasons:
            reasons[op] = why

    failed: set[str] = set()  # values downstream of an unsupported node or input: their nodes are not tried
    for init in g.initializer:
        try:
            graph.constants[init.name] = _to_array(init, f"{where}: initializer {init.name!r}")
            graph.types[init.name] = TensorType.of(graph.constants[init.name])
        except Unsupported as e:
            refuse("initializer dtype", init.name, str(e))
            failed.add(init.name)
    for vi in g.input:
        if vi.name in graph.constants:
            continue  # IR < 4 lists initializers among inputs: they are weights, not feeds
        try:
            graph.types[vi.name] = _value_type(vi, f"graph input {vi.name!r}")
        except Unsupported as e:
            refuse("graph input type", vi.name, str(e))
            failed.add(vi.name)
            continue
        graph.inputs.append(vi.name)
    declared_out = {}
    for vi in g.output:
        try:
            declared_out[vi.name] = _value_type(vi, f"graph output {vi.name!r}")
        except Unsupported:
            declared_out[vi.name] = None

    for k, proto in enumerate(g.node):
        label = proto.name or f"#{k} ({proto.op_type} -> {', '.join(proto.output)})"
        domain = "" if proto.domain in DEFAULT_DOMAINS else proto.domain
        op_key = proto.op_type if not domain else f"{domain}::{proto.op_type}"
        if any(i in failed for i in proto.input if i):
            # Its inputs could not be typed, so it cannot be tried; still list it when its op is unknown.
            if REGISTRY.lookup(proto.op_type, opsets.get(proto.domain, opset), domain) is None:
                refuse(op_key, label)
            failed.update(proto.output)
            continue
        try:
            attrs = attributes(proto)
            if proto.op_type == "Constant" and not domain:
                for o in proto.output:
                    arr = _constant_value(attrs)
                    graph.constants[o] = np.asarray(arr, order="C")
                    graph.types[o] = TensorType.of(arr)
                continue
            handler = REGISTRY.lookup(proto.op_type, opsets.get(proto.domain, opset), domain)
            if handler is None:
                raise Unsupported(None)
            n = OnnxNode(proto.op_type, domain, proto.name, list(proto.input), list(proto.output), attrs)
            b.begin(n)
            handler(b, n)
            missing = [o for o in proto.output if o and o not in graph.types]
            if missing:
                raise GraphValidationError(f"{n}: handler did not produce output(s) {missing}")
        except Unsupported as e:
            refuse(op_key, label, e.args[0] if e.args and e.args[0] else None)
            failed.update(proto.output)
        except (GraphValidationError, ModelImportError) as e:
            raise type(e)(f"{where}: {e}") from None
        except ClawError:
            raise
        except Exception as e:
            raise ModelImportError(f"{where}: cannot import node {label} ({proto.op_type}): "
                                   f"{type(e).__name__}: {e}") from e
    if unsupported:
        raise UnsupportedOpsError(where, unsupported, reasons)

    for vi in g.output:
        if vi.name not in graph.types:
            raise ModelImportError(f"{where}: graph output {vi.name!r} is never produced")
        graph.outputs.append(vi.name)
        if declared_out.get(vi.name) is not None:
            inferred = graph.types[vi.name]
            graph.types[vi.name] = merge(declared_out[vi.name], inferred)
    return graph
