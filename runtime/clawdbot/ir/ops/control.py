"""claw ops: control flow — if, loop and scan — whose bodies are claw subgraphs.

A subgraph is a claw Graph stored in a node attribute in its `Graph.to_dict()` form, so attributes stay plain
JSON and the .claw file needs nothing new. Subgraphs are *closed*: they hold no constants and read nothing but
their own inputs. Whatever a body needs from outside (a value of an enclosing graph, a weight) is passed to the
node as an extra input — a *capture* — and arrives in the body as the formal input at the matching position, so the
constants of a whole model stay in the top-level graph's one flat blob.

Inputs and outputs, with N carried values (states) and K scan outputs:

    if    inputs  cond, captures...
          branches (captures...) -> (outputs...)
    loop  inputs  M, cond, N carried..., captures...
          body    (i, cond, carried..., captures...) -> (cond, carried..., K scan slices...)
          outputs final carried..., K scan outputs (the slices stacked on a new axis 0)
    scan  inputs  N states..., scan inputs..., captures...
          body    (states..., one slice of each scan input..., captures...) -> (states..., K scan slices...)
          outputs final states..., K scan outputs (the slices stacked along scan_output_axes)

The subgraphs carry their own value types, inferred when they were imported; inference here checks that the
node's inputs fit the subgraph's formal inputs and derives the node's outputs from the subgraph's outputs.
`validate` checks the subgraphs themselves, recursively (see `subgraphs`).
"""
from __future__ import annotations

from ..graph import Dim, Graph, Node, TensorType
from .registry import Attr, InferCtx, InferenceError, register
from ._shapes import norm_axis

GRAPH_DOC = "a claw subgraph: Graph.to_dict() of a closed graph (no constants)"

# op -> its subgraph attributes
SUBGRAPH_ATTRS = {"if": ("then_branch", "else_branch"), "loop": ("body",), "scan": ("body",)}


# -- types ---------------------------------------------------------------------------------------------------
def join(a: TensorType, b: TensorType) -> TensorType:
    """The type of a value that is sometimes `a` and sometimes `b` (same dtype): dims they disagree on become
    None, and a rank they disagree on leaves the shape unknown."""
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return TensorType(a.dtype, None)
    return TensorType(a.dtype, tuple(x if x == y else None for x, y in zip(a.shape, b.shape)))


# -- subgraphs -----------------------------------------------------------------------------------------------
def subgraph(node: Node, attr: str) -> Graph:
    """Parse the subgraph held in `node.attrs[attr]`; InferenceError when it is not a closed claw graph."""
    d = node.attrs.get(attr)
    if not isinstance(d, dict):
        raise InferenceError(f"attribute {attr!r} must hold a subgraph (Graph.to_dict()), got {type(d).__name__}")
    try:
        g = Graph.from_dict(d, {})
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InferenceError(f"attribute {attr!r} is not a claw graph ({type(e).__name__}: {e})") from None
    if d.get("constants"):
        raise InferenceError(f"subgraph {attr!r} lists constants {d['constants']}; subgraph constants belong in "
                             f"the top-level graph, passed in as inputs")
    for name in (*g.inputs, *g.outputs):
        if name not in g.types:
            raise InferenceError(f"subgraph {attr!r}: value {name!r} has no type")
    return g


def _first_capture(node: Node) -> int:
    """Index of the first capture among the node's inputs (its subgraph input has the same index, minus 1 for
    if's branches, which take no cond)."""
    a = node.attrs
    try:
        if node.op == "if":
            return 1
        if node.op == "loop":
            return 2 + int(a["num_carried"])
        return int(a["num_states"]) + int(a["num_scan_inputs"])
    except (KeyError, TypeError, ValueError):
        raise InferenceError("the input counts in its attributes are not integers") from None


def subgraphs(node: Node) -> list[tuple[str, Graph, dict[str, str]]]:
    """The node's subgraphs as (attribute, graph, {subgraph input: node input it captures}); [] for other ops.

    The capture map lets a validator tell a subgraph which of its inputs have values known at conversion time.
    """
    attrs = SUBGRAPH_ATTRS.get(node.op, ())
    out = []
    for attr in attrs:
        g = subgraph(node, attr)
        first = _first_capture(node)
        offset = -1 if node.op == "if" else 0  # branches have no input for cond
        bound = {g.inputs[k + offset]: node.inputs[k] for k in range(first, len(node.inputs))
                 if 0 <= k + offset < len(g.inputs) and node.inputs[k]}
        out.append((attr, g, bound))
    return out


def _check_inputs(ctx: InferCtx, g: Graph, pairs, what: str) -> None:
    """Every (node input index, subgraph input index) pair: the node's value must fit the formal input."""
    for i, j in pairs:
        formal = g.types[g.inputs[j]]
        if ctx.has_input(i) and not ctx.type(i).compatible(formal):
            raise InferenceError(f"input {i} ({ctx.type(i)}) does not fit {what} input {g.inputs[j]!r} ({formal})")


def _check_count(what: str, got: int, want: int, of: str) -> None:
    if got != want:
        raise InferenceError(f"{what} has {got} {of}, expected {want}")


def _single_element(ctx: InferCtx, i: int, dtypes: tuple[str, ...], what: str) -> None:
    t = ctx.type(i)
    if t.dtype not in dtypes:
        raise InferenceError(f"{what} must be {' or '.join(dtypes)}, got {t.dtype}")
    if t.shape is not None and any(isinstance(d, int) and d != 1 for d in t.shape):
        raise InferenceError(f"{what} must hold one element, got shape {list(t.shape)}")


# -- if ------------------------------------------------------------------------------------------------------
@register("if", "control",
          "outputs = then_branch(captures) if cond else else_branch(captures). Inputs: cond (bool, one element), "
          "then the captures both branches take as their inputs. An output's type is the branches' common one, "
          "with the dims they disagree on unknown.",
          inputs=(1, -1), outputs=(1, -1),
          attrs={"then_branch": Attr(dict, doc=GRAPH_DOC), "else_branch": Attr(dict, doc=GRAPH_DOC)})
def _if(ctx: InferCtx):
    _single_element(ctx, 0, ("bool",), "cond")
    n_caps, n_outs = len(ctx.node.inputs) - 1, len(ctx.node.outputs)
    branches = []
    for attr in ("then_branch", "else_branch"):
        g = subgraph(ctx.node, attr)
        _check_count(attr, len(g.inputs), n_caps, "inputs (one per capture)")
        _check_count(attr, len(g.outputs), n_outs, "outputs (one per node output)")
        _check_inputs(ctx, g, [(1 + j, j) for j in range(n_caps)], attr)
        branches.append([g.types[o] for o in g.outputs])
    out = []
    for k, (a, b) in enumerate(zip(*branches)):
        if a.dtype != b.dtype:
            raise InferenceError(f"output {k} is {a.dtype} in then_branch but {b.dtype} in else_branch")
        out.append(join(a, b))
    return out


# -- loop ----------------------------------------------------------------------------------------------------
def _trip_count(ctx: InferCtx) -> Dim:
    """Iterations, when known at conversion time: only a for-loop (no cond) with a known M has a fixed count."""
    if ctx.has_input(1) or not ctx.has_input(0):
        return None
    m = ctx.value(0)
    return None if m is None or m.size != 1 else max(int(m.reshape(())), 0)


@register("loop", "control",
          "Runs body while i < M and cond: (cond, carried) = body(i, cond, carried, captures), i = 0, 1, …. "
          "Inputs: M (int64, one element; omitted: no limit), cond (bool, one element; omitted: the body's cond "
          "is ignored), the N initial carried values, the captures. Outputs: the final carried values, then each "
          "scan output of the body stacked over the iterations on a new axis 0.",
          inputs=(2, -1), outputs=(0, -1),
          attrs={"body": Attr(dict, doc=GRAPH_DOC), "num_carried": Attr(int, doc="N, loop-carried values")})
def _loop(ctx: InferCtx):
    n = ctx.attr("num_carried")
    n_inputs = len(ctx.node.inputs)
    if n < 0 or 2 + n > n_inputs:
        raise InferenceError(f"num_carried {n} does not fit {n_inputs} inputs (M, cond, carried..., captures...)")
    if ctx.has_input(0):
        _single_element(ctx, 0, ("int64",), "M")
    if ctx.has_input(1):
        _single_element(ctx, 1, ("bool",), "cond")
    g = subgraph(ctx.node, "body")
    _check_count("body", len(g.inputs), n_inputs, "inputs (i, cond, carried..., captures...)")
    k = len(g.outputs) - 1 - n
    if k < 0:
        raise InferenceError(f"body has {len(g.outputs)} outputs; it needs cond and {n} carried values")
    _check_count("loop", len(ctx.node.outputs), n + k, "outputs (carried..., scan outputs...)")
    for j, (what, dtype) in enumerate((("iteration number", "int64"), ("cond", "bool"))):
        if g.types[g.inputs[j]].dtype != dtype:
            raise InferenceError(f"body's {what} input must be {dtype}, got {g.types[g.inputs[j]]}")
    if g.types[g.outputs[0]].dtype != "bool":
        raise InferenceError(f"body's cond output must be bool, got {g.types[g.outputs[0]]}")
    _check_inputs(ctx, g, [(i, i) for i in range(1, n_inputs)], "body")
    out = []
    for j in range(n):
        initial, last = ctx.type(2 + j), g.types[g.outputs[1 + j]]
        if last.dtype != initial.dtype:
            raise InferenceError(f"carried value {j} enters as {initial.dtype} but the body returns {last.dtype}")
        out.append(join(initial, last))  # zero iterations return the initial value
    trips = _trip_count(ctx)
    for name in g.outputs[1 + n:]:
        t = g.types[name]
        out.append(TensorType(t.dtype, None if t.shape is None else (trips, *t.shape)))
    return out


# -- scan ----------------------------------------------------------------------------------------------------
def _scan_length(ctx: InferCtx, first: int, axes: list[int]) -> Dim:
    """The common length of the scan inputs along their scan axes."""
    dims = []
    for j, axis in enumerate(axes):
        shape = ctx.shape(first + j)
        if shape is not None:
            dims.append(shape[norm_axis(axis, len(shape), f"scan_input_axes[{j}]")])
    static = {d for d in dims if isinstance(d, int)}
    if len(static) > 1:
        raise InferenceError(f"scan inputs have different lengths {sorted(static)} along their scan axes")
    if static:
        return static.pop()
    return dims[0] if dims and all(d == dims[0] for d in dims) else None


def _without_axis(t: TensorType, axis: int) -> TensorType:
    if t.shape is None:
        return t
    a = norm_axis(axis, len(t.shape))
    return TensorType(t.dtype, t.shape[:a] + t.shape[a + 1:])


@register("scan", "control",
          "Runs body once per slice of the scan inputs: (states, ys) = body(states, slices, captures). Inputs: N "
          "initial states, num_scan_inputs scan inputs (sliced along scan_input_axes, last slice first where "
          "scan_input_directions is 1), the captures. Outputs: the final states, then each scan output: the "
          "body's slices stacked along scan_output_axes (in reverse order where scan_output_directions is 1).",
          inputs=(1, -1), outputs=(0, -1),
          attrs={"body": Attr(dict, doc=GRAPH_DOC),
                 "num_states": Attr(int, doc="N, state values"),
                 "num_scan_inputs": Attr(int, doc="scan inputs (at least 1)"),
                 "scan_input_axes": Attr(list, doc="one per scan input; negative counts from the end"),
                 "scan_input_directions": Attr(list, doc="one per scan input: 0 forward, 1 reverse"),
                 "scan_output_axes": Attr(list, doc="one per scan output, in the output's rank; negative "
                                                    "counts from the end"),
                 "scan_output_directions": Attr(list, doc="one per scan output: 0 append, 1 prepend")})
def _scan(ctx: InferCtx):
    n, m = ctx.attr("num_states"), ctx.attr("num_scan_inputs")
    n_inputs = len(ctx.node.inputs)
    if n < 0 or m < 1 or n + m > n_inputs:
        raise InferenceError(f"num_states {n} and num_scan_inputs {m} do not fit {n_inputs} inputs")
    g = subgraph(ctx.node, "body")
    _check_count("body", len(g.inputs), n_inputs, "inputs (states..., slices..., captures...)")
    k = len(g.outputs) - n
    if k < 0:
        raise InferenceError(f"body has {len(g.outputs)} outputs for {n} states")
    _check_count("scan", len(ctx.node.outputs), n + k, "outputs (states..., scan outputs...)")
    in_axes, out_axes = ctx.attr("scan_input_axes"), ctx.attr("scan_output_axes")
    for name, want in (("scan_input_axes", m), ("scan_input_directions", m), ("scan_output_axes", k),
                       ("scan_output_directions", k)):
        _check_count(name, len(ctx.attr(name)), want, "entries")
    for name in ("scan_input_directions", "scan_output_directions"):
        if any(d not in (0, 1) for d in ctx.attr(name)):
            raise InferenceError(f"{name} must hold 0 (forward) or 1 (reverse), got {ctx.attr(name)}")

    _check_inputs(ctx, g, [(i, i) for i in range(n)] + [(i, i) for i in range(n + m, n_inputs)], "body")
    for j, axis in enumerate(in_axes):
        if ctx.type(n + j).rank == 0:
            raise InferenceError(f"scan input {j} is a scalar; it needs an axis to scan")
        sliced, formal = _without_axis(ctx.type(n + j), axis), g.types[g.inputs[n + j]]
        if not sliced.compatible(formal):
            raise InferenceError(f"a slice of scan input {j} ({sliced}) does not fit body input "
                                 f"{g.inputs[n + j]!r} ({formal})")
    length = _scan_length(ctx, n, in_axes)
    out = []
    for j in range(n):
        initial, last = ctx.type(j), g.types[g.outputs[j]]
        if last.dtype != initial.dtype:
            raise InferenceError(f"state {j} enters as {initial.dtype} but the body returns {last.dtype}")
        out.append(join(initial, last))
    for j, axis in enumerate(out_axes):
        t = g.types[g.outputs[n + j]]
        if t.shape is None:
            out.append(TensorType(t.dtype, None))
            continue
        a = norm_axis(axis, len(t.shape) + 1, f"scan_output_axes[{j}]")
        out.append(TensorType(t.dtype, t.shape[:a] + (length,) + t.shape[a:]))
    return out
