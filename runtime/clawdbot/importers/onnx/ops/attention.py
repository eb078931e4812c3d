"""ONNX -> claw: Attention (opset 23; 24 adds the nonpad_kv_seqlen input, 25 the sliding window attributes)
and RotaryEmbedding (opset 23).

Both map one-to-one: the claw ops keep ONNX's input order and its 3-D / 4-D layouts. What needs translating is
attribute spelling: softmax_precision (an ONNX element type) becomes the lowest softmax precision the kernel
may use — float16 and bfloat16 requests are served in float32, which the kernel never goes below.
"""
from __future__ import annotations

from ..builder import Unsupported

# ONNX TensorProto element type -> claw softmax_dtype (FLOAT, FLOAT16, DOUBLE, BFLOAT16)
_SOFTMAX_PRECISION = {1: "float32", 10: "float32", 11: "float64", 16: "float32"}


def _heads(b, n, rank: int) -> tuple[int, int]:
    """(q_num_heads, kv_num_heads) for 3-D inputs; 4-D inputs carry their heads in their shape."""
    if rank == 4:
        return 0, 0
    hq, hkv = int(n.attr("q_num_heads", 0)), int(n.attr("kv_num_heads", 0))
    if hq < 1 or hkv < 1:
        raise Unsupported("3-D Q/K/V need the q_num_heads and kv_num_heads attributes")
    return hq, hkv


def onnx_attention(b, n):
    rank = b.rank(n.inputs[0])
    if rank not in (3, 4):
        raise Unsupported(f"Attention on rank-{rank} inputs (expected 3-D or 4-D)")
    hq, hkv = _heads(b, n, rank)
    precision = int(n.attr("softmax_precision", 1))
    if precision not in _SOFTMAX_PRECISION:
        raise Unsupported(f"softmax_precision {precision} is not a float type")
    mode = int(n.attr("qk_matmul_output_mode", 0))
    if mode not in (0, 1, 2, 3):
        raise Unsupported(f"qk_matmul_output_mode {mode}")
    if n.has_input(4) != n.has_input(5):
        raise Unsupported("past_key and past_value must be given together")
    left, right = int(n.attr("left_window_size", -1)), int(n.attr("right_window_size", -1))
    if left < -1 or right < -1:
        raise Unsupported(f"window sizes must be -1 or >= 0, got ({left}, {right})")
    b.emit("attention", n.inputs, n.outputs, q_num_heads=hq, kv_num_heads=hkv,
           scale=float(n.attr("scale", 0.0)), is_causal=bool(n.attr("is_causal", 0)),
           softcap=float(n.attr("softcap", 0.0)), left_window=left, right_window=right,
           qk_output_mode=mode, softmax_dtype=_SOFTMAX_PRECISION[precision])


def onnx_rotary_embedding(b, n):
    rank = b.rank(n.inputs[0])
    heads = int(n.attr("num_heads", 0))
    if rank == 3 and heads < 1:
        raise Unsupported("3-D RotaryEmbedding input needs the num_heads attribute")
    b.emit("rotary_embedding", n.inputs, n.outputs, interleaved=bool(n.attr("interleaved", 0)),
           rotary_dim=int(n.attr("rotary_embedding_dim", 0)), num_heads=heads if rank == 3 else 0)


def register(reg):
    reg.insert("Attention", onnx_attention, since=23)
    reg.insert("RotaryEmbedding", onnx_rotary_embedding, since=23)
