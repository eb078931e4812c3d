"""claw ops: attention — scaled dot-product attention with KV cache, and rotary position embedding.

`attention` takes Q, K, V either as 4-D [batch, heads, seq, head_size] or as 3-D [batch, seq, heads * head_size]
with the head counts as attributes (the layout transformer exporters emit; the kernel splits the heads with a
free reshape instead of the graph carrying reshape/transpose pairs). K/V may have fewer heads than Q (grouped /
multi-query attention: query head h reads KV head h // (q_heads / kv_heads)). Masking composes, by intersection,
an optional boolean or additive float mask (broadcast to [batch, q_heads, q_seq, total_seq], its last dim
padded with "masked" when shorter), a bottom-right aligned causal frontier, a sliding window and per-batch valid
KV lengths. A query row that can see no key produces zeros, never NaN.
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES
from ..graph import Dim, TensorType
from ._shapes import add, broadcast
from .registry import Attr, InferenceError, register

SOFTMAX_DTYPES = ("float32", "float64")
QK_MODES = (0, 1, 2, 3)


def _same_float(ctx, names: dict[int, str]) -> str:
    dtype = ctx.dtype(0)
    if dtype not in FLOAT_TYPES:
        raise InferenceError(f"{ctx.node.op} needs float inputs, got {dtype}")
    for i, what in names.items():
        if ctx.has_input(i) and ctx.dtype(i) != dtype:
            raise InferenceError(f"{what} has dtype {ctx.dtype(i)}, query has {dtype}")
    return dtype


def _split_heads(shape, heads: int, what: str) -> tuple[Dim, Dim, Dim, Dim]:
    """(batch, heads, seq, head_size) of a 3-D [batch, seq, heads * head_size] or 4-D tensor."""
    if shape is None:
        return None, heads or None, None, None
    if len(shape) == 4:
        return tuple(shape)
    hidden = shape[2]
    if isinstance(hidden, int) and hidden % heads:
        raise InferenceError(f"{what} hidden size {hidden} is not a multiple of {heads} heads")
    return shape[0], heads, shape[1], hidden // heads if isinstance(hidden, int) else None


def _check_eq(a: Dim, b: Dim, what: str) -> None:
    if isinstance(a, int) and isinstance(b, int) and a != b:
        raise InferenceError(f"{what}: {a} != {b}")


@register("attention", "attention",
          "Scaled dot-product attention y = softmax(scale * q @ k^T + bias) @ v. Inputs: q, k, v (all 3-D "
          "[batch, seq, heads * head_size] with q_num_heads / kv_num_heads set, or all 4-D [batch, heads, seq, "
          "head_size]), optional mask (bool: true attends; float: added to the scores; broadcast to [batch, "
          "q_heads, q_seq, total_seq], a shorter last dim counts as masked beyond its end), past_key / "
          "past_value [batch, kv_heads, past_seq, head_size] (prepended to k / v), nonpad_kv_seqlen (int64 "
          "[batch]: keys at or beyond it are masked). Outputs: y, present_key / present_value (4-D, past + "
          "new), and the scores [batch, q_heads, q_seq, total_seq] selected by qk_output_mode (0 raw, 1 after "
          "softcap, 2 plus bias, 3 softmax). Causal and window bounds are bottom-right aligned: query i sits at "
          "key position i + offset (offset = past_seq, or nonpad_kv_seqlen - q_seq). Rows that attend no key "
          "give zeros.",
          inputs=(3, 7), outputs=(1, 4),
          attrs={"q_num_heads": Attr(int, 0, "heads of 3-D q (0 for 4-D inputs)"),
                 "kv_num_heads": Attr(int, 0, "heads of 3-D k and v (0 for 4-D inputs)"),
                 "scale": Attr(float, 0.0, "score scale; 0 means 1 / sqrt(head_size)"),
                 "is_causal": Attr(bool, False, "query i attends key j only when j <= i + offset"),
                 "softcap": Attr(float, 0.0, "when > 0, scores become softcap * tanh(scores / softcap)"),
                 "left_window": Attr(int, -1, "keys more than this many positions before the query are "
                                              "masked (-1: unbounded)"),
                 "right_window": Attr(int, -1, "keys more than this many positions after the query are "
                                               "masked (-1: unbounded)"),
                 "qk_output_mode": Attr(int, 0, "what output 3 holds: 0 raw scores, 1 after softcap, "
                                                "2 plus bias, 3 softmax"),
                 "softmax_dtype": Attr(str, "float32", "lowest precision of the softmax: float32 or "
                                                       "float64 (float16 inputs never go below float32)")})
def _attention(ctx):
    dtype = _same_float(ctx, {1: "k", 2: "v", 4: "past_key", 5: "past_value"})
    q, k, v = ctx.type(0), ctx.type(1), ctx.type(2)
    ranks = {t.rank for t in (q, k, v) if t.rank is not None}
    if len(ranks) > 1 or not ranks <= {3, 4}:
        raise InferenceError(f"q, k, v must all be 3-D or all 4-D, got ranks {[q.rank, k.rank, v.rank]}")
    rank = ranks.pop() if ranks else None
    hq, hkv = ctx.attr("q_num_heads"), ctx.attr("kv_num_heads")
    if rank == 3 and (hq < 1 or hkv < 1):
        raise InferenceError("3-D q/k/v need q_num_heads and kv_num_heads")
    if ctx.attr("qk_output_mode") not in QK_MODES:
        raise InferenceError(f"qk_output_mode {ctx.attr('qk_output_mode')} (expected 0..3)")
    if ctx.attr("softmax_dtype") not in SOFTMAX_DTYPES:
        raise InferenceError(f"softmax_dtype {ctx.attr('softmax_dtype')!r} (expected float32 or float64)")
    if ctx.has_input(3) and ctx.dtype(3) not in ("bool", dtype):
        raise InferenceError(f"mask must be bool or {dtype}, got {ctx.dtype(3)}")
    if ctx.has_input(4) != ctx.has_input(5):
        raise InferenceError("past_key and past_value go together")
    if ctx.has_input(6) and ctx.dtype(6) != "int64":
        raise InferenceError(f"nonpad_kv_seqlen must be int64, got {ctx.dtype(6)}")

    b, hq, sq, d = _split_heads(q.shape if rank else None, hq, "q")
    bk, hkv, skv, dk = _split_heads(k.shape if rank else None, hkv, "k")
    _, hv, sv, dv = _split_heads(v.shape if rank else None, hkv, "v")
    _check_eq(d, dk, "q and k head sizes differ")
    _check_eq(skv, sv, "k and v sequence lengths differ")
    _check_eq(hkv, hv, "k and v head counts differ")
    _check_eq(b, bk, "q and k batch sizes differ")
    if isinstance(hq, int) and isinstance(hkv, int) and hq % hkv:
        raise InferenceError(f"{hq} query heads are not a multiple of {hkv} key/value heads")
    total = skv
    if ctx.has_input(4):
        past = ctx.shape(4)
        total = add(past[2], skv) if past is not None and len(past) == 4 else None
    if ctx.has_input(3) and ctx.shape(3) is not None:
        # The mask's last dim may be shorter than total_seq (padded as masked): check the other dims only.
        broadcast(ctx.shape(3)[:-1], (b, hq, sq))

    y = (b, sq, None if hq is None or dv is None else hq * dv) if rank == 3 else (b, hq, sq, dv)
    return [TensorType(dtype, y if rank else None),
            TensorType(dtype, (b, hkv, total, d)),
            TensorType(dtype, (b, hkv, total, dv)),
            TensorType(dtype, (b, hq, sq, total))]


@register("rotary_embedding", "attention",
          "Rotary position embedding of x (4-D [batch, heads, seq, head_size], or 3-D [batch, seq, "
          "num_heads * head_size]): the first rotary_dim entries of each head are rotated pairwise by angles "
          "whose cos / sin are inputs 1 and 2 — [batch, seq, rotary_dim / 2], or, with position_ids (input 3, "
          "int64 [batch, seq]), tables [max_position, rotary_dim / 2] indexed by it. Pairs are (i, i + "
          "rotary_dim / 2), or adjacent (2i, 2i + 1) when interleaved.",
          inputs=(3, 4),
          attrs={"interleaved": Attr(bool, False, "rotate adjacent pairs instead of the two halves"),
                 "rotary_dim": Attr(int, 0, "leading entries of each head that rotate (0: all)"),
                 "num_heads": Attr(int, 0, "heads of a 3-D x (0 for 4-D x)")})
def _rotary_embedding(ctx):
    dtype = _same_float(ctx, {1: "cos_cache", 2: "sin_cache"})
    x = ctx.type(0)
    heads = ctx.attr("num_heads")
    if x.rank is not None and x.rank not in (3, 4):
        raise InferenceError(f"x must be 3-D or 4-D, got rank {x.rank}")
    if x.rank == 3 and heads < 1:
        raise InferenceError("3-D x needs num_heads")
    if ctx.has_input(3) and ctx.dtype(3) != "int64":
        raise InferenceError(f"position_ids must be int64, got {ctx.dtype(3)}")
    head = _split_heads(x.shape, heads, "x")[3] if x.rank else None
    rot = ctx.attr("rotary_dim") or head
    if isinstance(rot, int) and (rot % 2 or (isinstance(head, int) and rot > head)):
        raise InferenceError(f"rotary_dim {rot} must be even and at most the head size {head}")
    for i, what in ((1, "cos_cache"), (2, "sin_cache")):
        s = ctx.shape(i)
        if s is not None and isinstance(rot, int):
            _check_eq(s[-1], rot // 2, f"{what} last dim vs rotary_dim / 2")
    return [TensorType(dtype, x.shape)]
