"""ONNX -> claw: If, Loop, Scan.

Bodies are imported with `Builder.subgraph`: the same handlers, so every claw op is available inside, and the
body's reads of enclosing values become captures that the claw node passes as trailing inputs (see
ir/ops/control.py). Per op:
- If: each branch is imported with no formal inputs; both then take the union of their captures, in one order,
  so the branches share one signature (a branch ignores the captures only the other one reads).
- Loop: the body's formal inputs are typed from the node: iteration number int64[], cond bool (the node's cond
  type, bool[] without one), carried values from their initial values. A value the body feeds back with other
  dims (a growing tensor) widens its type — those dims become unknown — and the body is imported again, so its
  types hold for every iteration.
- Scan 9+: attribute defaults filled in, axes and directions one per scan input / output. Scan 8 (a batch axis
  first on every input and output) becomes a scan over the batch entries whose body is a scan over time — the
  ONNX body as is; its per-entry sequence_lens input is not supported.
Sequence- and optional-typed values (SequenceEmpty, Optional, ...) stay unsupported: their ops have no handlers,
so a body using them is reported with its parent node's other unsupported nodes.
"""
from __future__ import annotations

from ....ir.graph import Graph, Node, TensorType
from ....ir.infer import infer_node
from ....ir.ops import registry as opset
from ....ir.ops.control import join
from ..builder import Unsupported


def _body(n, attr: str):
    proto = n.graphs.get(attr)
    if proto is None:
        raise Unsupported(f"{n.op_type} without its {attr!r} subgraph")
    return proto


def _outputs(n, count: int) -> list[str]:
    """The node's outputs padded with "" to the `count` the claw op produces."""
    if len(n.outputs) > count:
        raise Unsupported(f"{len(n.outputs)} outputs, but the body gives {count}")
    return list(n.outputs) + [""] * (count - len(n.outputs))


def _slice_type(t: TensorType, axis: int, what: str) -> TensorType:
    """The type of one slice of a value of type `t` along `axis`."""
    if t.shape is None:
        return t
    r = len(t.shape)
    if not -r <= axis < r:
        raise Unsupported(f"{what} axis {axis} is out of range for rank {r}")
    a = axis % r
    return TensorType(t.dtype, t.shape[:a] + t.shape[a + 1:])


def _import_fed_back(b, proto, types: list[TensorType], feedback: list[tuple[int, int]], what: str):
    """Import a body whose input i receives, on the next iteration, its output o, for each (i, o) in `feedback`.

    Such an input's type is widened (`join`) with the output's until the body's outputs fit its inputs; each
    round only turns dims (or a rank) unknown, so this ends. Discarded rounds leave no trace (Subgraph)."""
    types = list(types)
    while True:
        sub = b.subgraph(proto, types)
        g = sub.graph
        wider = list(types)
        for i, o in feedback:
            back = g.types[g.outputs[o]]
            if back.dtype != types[i].dtype:
                raise Unsupported(f"{what} {g.inputs[i]!r} enters the body as {types[i].dtype} but comes back as "
                                  f"{back.dtype}")
            wider[i] = join(types[i], back)
        if wider == types:
            return sub
        types = wider


# -- If ------------------------------------------------------------------------------------------------------
def _take_inputs(b, g: Graph, captured: list[str], union: list[str]) -> None:
    """Make branch `g`, whose inputs receive `captured`, take `union` instead (an input for each name)."""
    inner = dict(zip(captured, g.inputs))
    inputs = []
    for name in union:
        if name not in inner:  # only the other branch reads it: an input this branch ignores
            inner[name] = name if name not in g.types else b.fresh("unused")
            g.types[inner[name]] = b.type(name)
        inputs.append(inner[name])
    g.inputs = inputs


def if_(b, n):
    subs = [b.subgraph(_body(n, attr), []) for attr in ("then_branch", "else_branch")]
    then_g, else_g = (s.graph for s in subs)
    if len(then_g.outputs) != len(else_g.outputs):
        raise Unsupported(f"then_branch has {len(then_g.outputs)} outputs, else_branch {len(else_g.outputs)}")
    for k, (a, c) in enumerate(zip(then_g.outputs, else_g.outputs)):
        if then_g.types[a].dtype != else_g.types[c].dtype:
            raise Unsupported(f"output {k} is {then_g.types[a].dtype} in then_branch but {else_g.types[c].dtype} "
                              f"in else_branch")
    captured = [s.close() for s in subs]
    union = list(dict.fromkeys(captured[0] + captured[1]))
    for s, names in zip(subs, captured):
        _take_inputs(b, s.graph, names, union)
    b.emit("if", [n.input(0), *union], _outputs(n, len(then_g.outputs)),
           then_branch=then_g.to_dict(), else_branch=else_g.to_dict())


# -- Loop ----------------------------------------------------------------------------------------------------
def loop(b, n):
    proto = _body(n, "body")
    carried = n.inputs[2:]
    nc = len(carried)
    if not all(carried):
        raise Unsupported("an omitted loop-carried initial value")
    if len(proto.input) != 2 + nc or len(proto.output) < 1 + nc:
        raise Unsupported(f"body with {len(proto.input)} inputs and {len(proto.output)} outputs for {nc} "
                          f"loop-carried values")
    cond_type = b.type(n.input(1)) if n.has_input(1) else TensorType("bool", ())
    types = [TensorType("int64", ()), cond_type, *(b.type(v) for v in carried)]
    feedback = [(1, 0)] + [(2 + j, 1 + j) for j in range(nc)]
    sub = _import_fed_back(b, proto, types, feedback, "loop-carried value")
    captures = sub.close()
    b.emit("loop", [n.input(0), n.input(1), *carried, *captures], _outputs(n, len(proto.output) - 1),
           body=sub.graph.to_dict(), num_carried=nc)


# -- Scan ----------------------------------------------------------------------------------------------------
def _scan_attrs(n, m: int, k: int) -> dict:
    def listed(name: str, count: int) -> list[int]:
        values = [int(v) for v in (n.attr(name) or [0] * count)]
        if len(values) != count:
            raise Unsupported(f"{name} has {len(values)} entries for {count}")
        return values
    return dict(scan_input_axes=listed("scan_input_axes", m), scan_input_directions=listed("scan_input_directions", m),
                scan_output_axes=listed("scan_output_axes", k),
                scan_output_directions=listed("scan_output_directions", k))


def _import_scan_body(b, proto, state_types: list[TensorType], slice_types: list[TensorType]):
    ns = len(state_types)
    if len(proto.input) != ns + len(slice_types) or len(proto.output) < ns:
        raise Unsupported(f"body with {len(proto.input)} inputs and {len(proto.output)} outputs for {ns} states "
                          f"and {len(slice_types)} scan inputs")
    return _import_fed_back(b, proto, [*state_types, *slice_types], [(j, j) for j in range(ns)], "scan state")


def scan(b, n):
    proto = _body(n, "body")
    m = int(n.attr("num_scan_inputs"))
    ns = len(n.inputs) - m
    if m < 1 or ns < 0 or len(proto.output) < ns:
        raise Unsupported(f"num_scan_inputs {m} for {len(n.inputs)} inputs and {len(proto.output)} body outputs")
    attrs = _scan_attrs(n, m, len(proto.output) - ns)
    states, xs = n.inputs[:ns], n.inputs[ns:]
    slices = [_slice_type(b.type(x), axis, "scan input") for x, axis in zip(xs, attrs["scan_input_axes"])]
    sub = _import_scan_body(b, proto, [b.type(s) for s in states], slices)
    captures = sub.close()
    b.emit("scan", [*states, *xs, *captures], _outputs(n, len(proto.output)), body=sub.graph.to_dict(),
           num_states=ns, num_scan_inputs=m, **attrs)


def _scan_node_graph(name: str, node_attrs: dict, input_types: list[TensorType], n_out: int) -> Graph:
    """A claw graph holding one `scan` node on all its inputs, returning all its outputs."""
    g = Graph(name=name, inputs=[f"in{j}" for j in range(len(input_types))],
              outputs=[f"out{j}" for j in range(n_out)])
    g.types.update(zip(g.inputs, input_types))
    node = Node("scan", list(g.inputs), list(g.outputs), opset.get("scan").complete_attrs(node_attrs, name), name)
    g.types.update(zip(g.outputs, infer_node(node, g.types, {}, {})))
    g.nodes.append(node)
    return g


def scan8(b, n):
    """Scan 8: input 0 is sequence_lens, then states and scan inputs, all with a batch axis first."""
    if n.has_input(0):
        raise Unsupported("Scan-8 sequence_lens (per-batch-entry lengths)")
    proto = _body(n, "body")
    m = int(n.attr("num_scan_inputs"))
    values = n.inputs[1:]
    ns = len(values) - m
    if m < 1 or ns < 0:
        raise Unsupported(f"num_scan_inputs {m} for {len(values)} states and scan inputs")
    k = len(proto.output) - ns
    directions = [int(d) for d in (n.attr("directions") or [0] * m)]
    entry = [_slice_type(b.type(v), 0, "Scan-8 batch") for v in values]  # one batch entry of each value
    sub = _import_scan_body(b, proto, entry[:ns], [_slice_type(t, 0, "scan input") for t in entry[ns:]])
    captures = sub.close()
    caps = [b.type(c) for c in captures]
    over_time = dict(body=sub.graph.to_dict(), num_states=ns, num_scan_inputs=m, scan_input_axes=[0] * m,
                     scan_input_directions=directions, scan_output_axes=[0] * k, scan_output_directions=[0] * k)
    per_entry = _scan_node_graph(f"{n.name or 'scan'}_per_batch_entry", over_time, [*entry, *caps], ns + k)
    everything = len(values)  # states too are scanned over the batch axis; final states stack up likewise
    b.emit("scan", [*values, *captures], _outputs(n, ns + k), body=per_entry.to_dict(), num_states=0,
           num_scan_inputs=everything, scan_input_axes=[0] * everything, scan_input_directions=[0] * everything,
           scan_output_axes=[0] * (ns + k), scan_output_directions=[0] * (ns + k))


def register(reg):
    reg.insert("If", if_, since=1)
    reg.insert("Loop", loop, since=1)
    reg.insert("Scan", scan8, since=8)
    reg.insert("Scan", scan, since=9)
