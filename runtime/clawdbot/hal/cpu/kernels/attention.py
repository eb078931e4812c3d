"""CPU kernels: attention and rotary embedding.

float16 inputs are computed in float32 and rounded once at the end: the scores of a long sequence overflow or
lose the softmax's small terms in half precision. Grouped-query attention never materialises repeated K/V
heads: Q is viewed as [batch, kv_heads, group, seq, head_size] and multiplied against each KV head once.
Masks are folded into one boolean "allowed" array plus an optional additive float mask, so a row's fate
(attended or fully masked) is decided on the mask alone, never on the possibly non-finite scores.
"""
from __future__ import annotations

import math

import numpy as np

from .conv import compute_dtype
from .registry import kernel, kernel_factory


def _to_4d(x: np.ndarray, heads: int) -> np.ndarray:
    """[batch, seq, heads * size] -> a [batch, heads, seq, size] view; 4-D inputs pass through."""
    if x.ndim == 4:
        return x
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def _grouped_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [B, Hq, M, K] @ b [B, Hkv, K, N] where query head h uses KV head h // (Hq / Hkv)."""
    bsz, hq, m, _ = a.shape
    hkv = b.shape[1]
    out = np.matmul(a.reshape(bsz, hkv, hq // hkv, m, a.shape[-1]), b[:, :, None])
    return out.reshape(bsz, hq, m, b.shape[-1])


def _key_offset(q_len: int, past_len: int, nonpad: np.ndarray | None):
    """Key position of query 0: past_len for an internal cache, nonpad - q_len per batch for an external one.
    Returned broadcastable against [batch, heads, q, kv]."""
    if nonpad is not None and past_len == 0:
        return (nonpad.astype(np.int64) - q_len).reshape(-1, 1, 1, 1)
    return past_len


def _allowed(q_len: int, kv_len: int, offset, nonpad, mask, attrs) -> np.ndarray | None:
    """Boolean [.., q, kv] of the keys each query may attend (None: all of them)."""
    allowed = None

    def both(extra):
        return extra if allowed is None else allowed & extra

    qpos = np.arange(q_len).reshape(q_len, 1) + offset  # each query's position among the keys
    kpos = np.arange(kv_len)
    if attrs["is_causal"]:
        allowed = both(kpos <= qpos)
    if attrs["left_window"] >= 0:
        allowed = both(qpos - kpos <= attrs["left_window"])
    if attrs["right_window"] >= 0:
        allowed = both(kpos - qpos <= attrs["right_window"])
    if nonpad is not None:
        allowed = both(kpos < nonpad.astype(np.int64).reshape(-1, 1, 1, 1))
    if mask is not None and mask.dtype == np.bool_:
        allowed = both(_pad_last(mask, kv_len, False))
    return allowed


def _pad_last(mask: np.ndarray, kv_len: int, fill) -> np.ndarray:
    """A mask shorter than the keys covers the leading keys; the rest are masked."""
    short = kv_len - mask.shape[-1]
    if short <= 0:
        return mask
    return np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, short)], constant_values=fill)


def _bias(q_len, kv_len, offset, nonpad, mask, attrs, work):
    """Additive bias (0 / -inf / float mask) broadcastable to the scores, or None when nothing is masked."""
    allowed = _allowed(q_len, kv_len, offset, nonpad, mask, attrs)
    additive = None
    if mask is not None and mask.dtype != np.bool_:
        additive = _pad_last(mask.astype(work), kv_len, -np.inf)
    if allowed is None:
        return additive
    return np.where(allowed, work.type(0) if additive is None else additive, work.type(-np.inf))


def _softmax_rows(s: np.ndarray, masked_rows: np.ndarray | None) -> np.ndarray:
    """Max-shifted softmax over the last axis; rows with every key masked become zeros."""
    m = np.max(s, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, s.dtype.type(0))  # an all -inf row must not compute -inf - -inf
    e = np.exp(s - m)
    total = np.sum(e, axis=-1, keepdims=True)
    p = e / np.where(total == 0, s.dtype.type(1), total)
    if masked_rows is not None:
        p = np.where(masked_rows, s.dtype.type(0), p)
    return p


@kernel_factory("attention")
def attention_factory(node, in_types, out_types):
    attrs = dict(node.attrs)
    hq_attr, hkv_attr, mode, softcap = (attrs["q_num_heads"], attrs["kv_num_heads"], attrs["qk_output_mode"],
                                        attrs["softcap"])
    want_qk = len(node.outputs) > 3 and bool(node.outputs[3])  # casting unread scores would be wasted work
    work = np.promote_types(compute_dtype(in_types[0].dtype), attrs["softmax_dtype"])

    def run(q, k, v, mask=None, past_key=None, past_value=None, nonpad=None):
        q4, k4, v4 = _to_4d(q, hq_attr), _to_4d(k, hkv_attr), _to_4d(v, hkv_attr)
        present_k = k4 if past_key is None else np.concatenate([past_key, k4], axis=2)
        present_v = v4 if past_value is None else np.concatenate([past_value, v4], axis=2)
        q_len, kv_len = q4.shape[2], present_k.shape[2]
        scale = attrs["scale"] or 1.0 / math.sqrt(q4.shape[3])

        scores = _grouped_matmul(q4.astype(work, copy=False) * work.type(scale),
                                 present_k.astype(work, copy=False).swapaxes(-1, -2))
        qk = scores if mode == 0 else None
        if softcap > 0:
            scores = work.type(softcap) * np.tanh(scores / work.type(softcap))
        if mode == 1:
            qk = scores
        past_len = 0 if past_key is None else past_key.shape[2]
        bias = _bias(q_len, kv_len, _key_offset(q_len, past_len, nonpad), nonpad, mask, attrs, work)
        masked_rows = None
        if bias is not None:
            scores = scores + bias
            masked_rows = np.all(np.isneginf(bias), axis=-1, keepdims=True)
        if mode == 2:
            qk = scores
        p = _softmax_rows(scores, masked_rows)
        if mode == 3:
            qk = p
        y = _grouped_matmul(p, present_v.astype(work, copy=False))
        if q.ndim == 3:
            y = y.transpose(0, 2, 1, 3).reshape(q.shape[0], q_len, -1)
        qk = np.ascontiguousarray(qk, dtype=q.dtype) if want_qk else None
        return (np.ascontiguousarray(y, dtype=q.dtype), np.ascontiguousarray(present_k),
                np.ascontiguousarray(present_v), qk)
    return run


@kernel("rotary_embedding")
def rotary_embedding(x, cos, sin, position_ids=None, *, interleaved, rotary_dim, num_heads):
    work = compute_dtype(x.dtype)
    # Work on [batch, seq, heads, head_size] so the [batch, seq, rotary_dim / 2] tables broadcast over heads.
    xs = x.transpose(0, 2, 1, 3) if x.ndim == 4 else x.reshape(*x.shape[:2], num_heads, -1)
    out = xs.astype(work)  # a fresh copy: the rotated entries are written into it
    rot = rotary_dim or out.shape[-1]
    half = rot // 2
    if position_ids is not None:
        cos, sin = cos[position_ids], sin[position_ids]
    cos, sin = cos.astype(work)[..., None, :], sin.astype(work)[..., None, :]
    first, second = (slice(0, rot, 2), slice(1, rot, 2)) if interleaved else (slice(0, half), slice(half, rot))
    x1, x2 = out[..., first].copy(), out[..., second].copy()
    out[..., first] = cos * x1 - sin * x2
    out[..., second] = sin * x1 + cos * x2
    out = out.transpose(0, 2, 1, 3) if x.ndim == 4 else out.reshape(x.shape)
    return np.ascontiguousarray(out, dtype=x.dtype)
