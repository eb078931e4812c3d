"""ONNX model -> claw_ir Graph.

Loading failures (missing, truncated, not protobuf) raise ModelImportError naming the file. Every node is then
handed to its versioned handler; nodes whose op type has no handler, or whose handler says `Unsupported`, are
collected and reported together in ONE UnsupportedOpsError before anything runs.

Control-flow bodies (If, Loop, Scan subgraphs) are imported by the same machinery, one `_Scope` per graph: a
handler calls `Builder.subgraph`, which imports the body's nodes with the same handlers into a claw subgraph.
ONNX lets a body read any value of its enclosing graphs; such a value is *captured* — made an extra input of
the body — and the body's constants are hoisted into the model's constants, so claw subgraphs are closed (see
ir/ops/control.py). Unsupported nodes inside bodies land in the same report as the main graph's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ClawError, GraphValidationError, ModelImportError, UnsupportedOpsError
from ...ir.dtypes import DTYPES
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
    _check_names_are_text(model.graph, where)
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as e:
        raise ModelImportError(f"{where}: cannot load external tensor data: {e}") from None
    return model


def _check_names_are_text(graph, where: str) -> None:
    """ONNX's proto2 strings are not UTF-8-checked on parse: a corrupted byte in a name comes back as `bytes`.
    Refuse it here, naming the spot, instead of failing somewhere inside a handler."""
    def bad(value) -> bool:
        return isinstance(value, bytes)

    for kind, items in (("graph input", graph.input), ("graph output", graph.output),
                        ("value_info", graph.value_info), ("initializer", graph.initializer)):
        for i, item in enumerate(items):
            if bad(item.name):
                raise ModelImportError(f"{where}: {kind} #{i} has a name that is not valid UTF-8 "
                                       f"({item.name[:40]!r}); the file is corrupted")
    for k, node in enumerate(graph.node):
        fields = [("name", node.name), ("op_type", node.op_type), ("domain", node.domain)]
        fields += [("input", x) for x in node.input] + [("output", x) for x in node.output]
        fields += [("attribute name", a.name) for a in node.attribute]
        for what, value in fields:
            if bad(value):
                raise ModelImportError(f"{where}: node #{k} ({node.op_type if not bad(node.op_type) else '?'}) "
                                       f"has a {what} that is not valid UTF-8 ({value[:40]!r}); the file is "
                                       f"corrupted")
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _check_names_are_text(sub, where)


def _dtype_of(elem_type: int, what: str) -> str:
    try:
        np_dtype = onnx.helper.tensor_dtype_to_np_dtype(elem_type)
        name = np.dtype(np_dtype).name
    except Exception:
        if elem_type not in onnx.TensorProto.DataType.values():
            raise ModelImportError(f"{what} has element type code {elem_type}, which is not an ONNX type "
                                   f"(corrupted file?)") from None
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type else "undefined"
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
    """The node's attributes as Python values, except subgraphs, which `graph_attributes` returns."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise Unsupported(f"attribute {a.name!r} refers to a function attribute")
        if a.type == onnx.AttributeProto.GRAPH:
            continue
        v = onnx.helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode("utf-8", "replace") for x in v]
        elif isinstance(v, onnx.TensorProto):
            v = _to_array(v, f"attribute {a.name!r} of node {node.name!r}")
        elif isinstance(v, (onnx.GraphProto, onnx.SparseTensorProto)) or (
                isinstance(v, list) and v and not isinstance(v[0], (int, float, str))):
            raise Unsupported(f"attribute {a.name!r} holds a list of subgraphs or a sparse tensor")
        out[a.name] = v
    return out


def graph_attributes(node) -> dict[str, "onnx.GraphProto"]:
    """The node's subgraph attributes (If branches, Loop and Scan bodies), as raw GraphProtos."""
    return {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH and not a.ref_attr_name}


def _value_names(g) -> set[str]:
    """Every value name in ONNX graph `g` and, recursively, its subgraphs: generated names avoid them all."""
    names = {vi.name for vi in g.input} | {t.name for t in g.initializer}
    for n in g.node:
        names.update(n.input)
        names.update(n.output)
        for a in n.attribute:
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                names |= _value_names(sub)
    return names


def _constant_value(attrs: dict[str, Any]) -> np.ndarray:
    if "value" in attrs:
        return np.asarray(attrs["value"])
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32), ("value_int", np.int64),
                       ("value_ints", np.int64)):
        if key in attrs:
            return np.asarray(attrs[key], dtype=dtype)
    raise Unsupported(f"Constant with attribute(s) {sorted(attrs)} (string/sparse constants)")


class _AlreadyReported(Unsupported):
    """A subgraph could not be imported; the nodes at fault are already in the report."""


_FAILED = object()  # lookup() of a value that could not be typed (downstream of something unsupported)


class _Context:
    """What the main graph and every subgraph share: the model, its opsets, and the report of unsupported nodes."""

    def __init__(self, where: str, opset: int, opsets: dict[str, int]):
        from .ops import REGISTRY
        self.where, self.opset, self.opsets, self.registry = where, opset, opsets, REGISTRY
        self.unsupported: dict[str, list[str]] = {}
        self.reasons: dict[str, str] = {}

    def refuse(self, op: str, who: str, why: str | None = None) -> None:
        self.unsupported.setdefault(op, []).append(who)
        if why and op not in self.reasons:
            self.reasons[op] = why


class Subgraph:
    """An imported ONNX subgraph. `graph` is the claw subgraph, its types inferred for the input types given.

    `close()` makes it closed — its constants hoisted to the enclosing graph, every outside value it reads an input
    — and returns the enclosing graph's names that the control node passes for those extra inputs, in order. A
    Subgraph dropped without closing leaves the enclosing graphs untouched, so a handler may import a body again
    (e.g. with wider types for loop-carried values whose shape changes between iterations)."""

    def __init__(self, scope: "_Scope"):
        self._scope = scope
        self.graph = scope.b.graph

    def close(self) -> list[str]:
        return self._scope.close()


class _Scope:
    """One graph being imported — the model's main graph or a body — with the scope that encloses it.

    A name a body does not define is looked up (read-only) in the enclosing scopes and captured: it becomes an
    input of the body, mapped to the enclosing name in `captures`. While importing, a captured value known at
    conversion time is also kept among the body's constants, so handlers and inference see it as they would in
    the main graph; close() drops those copies.
    """

    def __init__(self, ctx: _Context, builder: Builder, parent: "_Scope | None" = None, prefix: str = ""):
        self.ctx, self.b, self.parent, self.prefix = ctx, builder, parent, prefix
        self.failed: set[str] = set()      # values that cannot be typed: nodes reading them are not tried
        self.captures: dict[str, str] = {}  # input of this graph -> the enclosing graph's value it receives
        self.n_formal = len(builder.graph.inputs)
        self.complete = True               # False once any node of this graph was refused or skipped
        self._label = ""                   # the node being imported, for naming the subgraphs it holds
        builder.subgraph_importer = self.import_subgraph

    # -- names -----------------------------------------------------------------------------------------------
    def lookup(self, name: str):
        """What this graph sees as `name`: (type, value known at conversion time or None), _FAILED, or None."""
        if name in self.b.graph.types:
            return self.b.type(name), self.b.value(name)
        if name in self.failed:
            return _FAILED
        return self.parent.lookup(name) if self.parent else None

    def resolve(self, name: str) -> None:
        """Make `name` readable in this graph: capture it when only an enclosing graph defines it."""
        if not name or self.parent is None or name in self.b.graph.types or name in self.failed:
            return
        found = self.parent.lookup(name)
        if found is _FAILED:
            self.failed.add(name)
        elif found is not None:
            t, value = found
            g = self.b.graph
            g.inputs.append(name)
            g.types[name] = t
            if value is not None:
                g.constants[name] = value
            self.captures[name] = name
        # Defined nowhere: left alone, so the node's handler fails naming it.

    def refuse(self, op: str, who: str, why: str | None = None) -> None:
        self.ctx.refuse(op, who, why)
        self.complete = False

    # -- importing -------------------------------------------------------------------------------------------
    def add_initializers(self, initializers) -> None:
        graph = self.b.graph
        for init in initializers:
            try:
                graph.constants[init.name] = _to_array(init, f"{self.ctx.where}: initializer {init.name!r}")
                graph.types[init.name] = TensorType.of(graph.constants[init.name])
            except Unsupported as e:
                self.refuse("initializer dtype", self.prefix + init.name, str(e))
                self.failed.add(init.name)

    def import_nodes(self, nodes) -> None:
        """Hand every node to its handler; collect the ones that cannot be imported in the context's report."""
        ctx, graph, b, failed = self.ctx, self.b.graph, self.b, self.failed
        for k, proto in enumerate(nodes):
            label = self.prefix + (proto.name or f"#{k} ({proto.op_type} -> {', '.join(proto.output)})")
            domain = "" if proto.domain in DEFAULT_DOMAINS else proto.domain
            op_key = proto.op_type if not domain else f"{domain}::{proto.op_type}"
            op_opset = ctx.opsets.get(proto.domain, ctx.opset)
            for name in proto.input:
                self.resolve(name)
            if any(i in failed for i in proto.input if i):
                # Its inputs could not be typed, so it cannot be tried; still list it when its op is unknown.
                if ctx.registry.lookup(proto.op_type, op_opset, domain) is None:
                    self.refuse(op_key, label)
                self.complete = False
                failed.update(proto.output)
                continue
            self._label = label
            try:
                attrs = attributes(proto)
                if proto.op_type == "Constant" and not domain:
                    for o in proto.output:
                        arr = _constant_value(attrs)
                        graph.constants[o] = np.asarray(arr, order="C")
                        graph.types[o] = TensorType.of(arr)
                    continue
                handler = ctx.registry.lookup(proto.op_type, op_opset, domain)
                if handler is None:
                    raise Unsupported(None)
                n = OnnxNode(proto.op_type, domain, proto.name, list(proto.input), list(proto.output), attrs,
                             graph_attributes(proto))
                b.begin(n)
                handler(b, n)
                missing = [o for o in proto.output if o and o not in graph.types]
                if missing:
                    raise GraphValidationError(f"{n}: handler did not produce output(s) {missing}")
            except _AlreadyReported:
                self.complete = False
                failed.update(proto.output)
            except Unsupported as e:
                self.refuse(op_key, label, e.args[0] if e.args and e.args[0] else None)
                failed.update(proto.output)
            except (GraphValidationError, ModelImportError) as e:
                if self.parent is not None:
                    raise  # the main graph's scope names the model, once
                raise type(e)(f"{ctx.where}: {e}") from None
            except ClawError:
                raise
            except Exception as e:
                raise ModelImportError(f"{ctx.where}: cannot import node {label} ({proto.op_type}): "
                                       f"{type(e).__name__}: {e}") from e

    def import_subgraph(self, proto, input_types: list[TensorType]) -> Subgraph:
        """Import subgraph `proto` of the node being imported, its formal inputs typed `input_types`."""
        where = f"{self._label}/{proto.name or 'subgraph'}"
        if len(proto.input) != len(input_types):
            raise Unsupported(f"subgraph {where} has {len(proto.input)} inputs; the node gives it "
                              f"{len(input_types)}")
        if len(proto.sparse_initializer):
            raise Unsupported(f"subgraph {where} has sparse initializers")
        graph = Graph(name=proto.name or "subgraph")
        for vi, t in zip(proto.input, input_types):
            graph.inputs.append(vi.name)
            graph.types[vi.name] = t
        body = _Scope(self.ctx, self.b.child(graph), self, prefix=where + "/")
        body.add_initializers(proto.initializer)
        body.import_nodes(proto.node)
        outputs = [vi.name for vi in proto.output]
        for name in outputs:
            body.resolve(name)
        if not body.complete or any(name in body.failed for name in outputs):
            raise _AlreadyReported()
        missing = [name for name in outputs if name not in graph.types]
        if missing:
            raise ModelImportError(f"subgraph {where}: output(s) {missing} are never produced")
        graph.outputs = outputs
        return Subgraph(body)

    def close(self) -> list[str]:
        """Finish a body (see Subgraph.close)."""
        g, parent = self.b.graph, self.parent
        used = {i for n in g.nodes for i in n.inputs if i} | set(g.outputs)
        for name, value in list(g.constants.items()):
            del g.constants[name]
            if name in self.captures:
                continue  # the import-time copy of a captured value: the value itself comes in as an input
            if name not in used:
                del g.types[name]
                continue
            # A constant of the body becomes a constant of the enclosing graph (whose own close() moves it on up
            # to the model's constants), passed in as an input.
            g.inputs.append(name)
            self.captures[name] = parent.b.const(value, "hoisted")
        outer = [self.captures[name] for name in g.inputs[self.n_formal:]]
        for name in outer:
            parent.resolve(name)  # an enclosing body captures it in turn
        return outer


def import_onnx(source, *, name: str | None = None) -> Graph:
    """Convert an ONNX model (path or ModelProto) to a claw_ir Graph (inferred, not yet validated)."""
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
    ctx = _Context(where, opset, opsets)
    main = _Scope(ctx, Builder(graph, opset, _value_names(g)))
    main.add_initializers(g.initializer)
    for vi in g.input:
        if vi.name in graph.constants:
            continue  # IR < 4 lists initializers among inputs: they are weights, not feeds
        try:
            graph.types[vi.name] = _value_type(vi, f"graph input {vi.name!r}")
        except Unsupported as e:
            main.refuse("graph input type", vi.name, str(e))
            main.failed.add(vi.name)
            continue
        except ModelImportError as e:
            raise ModelImportError(f"{where}: {e}") from None
        graph.inputs.append(vi.name)
    declared_out = {}
    for vi in g.output:
        try:
            declared_out[vi.name] = _value_type(vi, f"graph output {vi.name!r}")
        except Unsupported:
            declared_out[vi.name] = None
        except ModelImportError as e:
            raise ModelImportError(f"{where}: {e}") from None

    main.import_nodes(g.node)
    if ctx.unsupported:
        raise UnsupportedOpsError(where, ctx.unsupported, ctx.reasons)

    for vi in g.output:
        if vi.name not in graph.types:
            raise ModelImportError(f"{where}: graph output {vi.name!r} is never produced")
        graph.outputs.append(vi.name)
        if declared_out.get(vi.name) is not None:
            inferred = graph.types[vi.name]
            graph.types[vi.name] = merge(declared_out[vi.name], inferred)
    return graph
