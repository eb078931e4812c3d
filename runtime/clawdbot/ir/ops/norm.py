"""claw ops: normalisation — batch (inference), layer, instance, group, RMS, mean-variance, LRN and Lp.

Statistics are computed in at least float32 (float16 inputs would lose too much), and the result is cast
back to the input dtype. Channel parameters (scale, bias, mean, var) have the input's dtype.
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES
from ..graph import Dim, TensorType
from ._shapes import norm_axis
from .registry import Attr, InferenceError, register

_EPS = Attr(float, 1e-5)


def _float_input(ctx, *params: int) -> TensorType:
    x = ctx.type(0)
    if x.dtype not in FLOAT_TYPES:
        raise InferenceError(f"needs a float input, got {x.dtype}")
    for i in params:
        if ctx.has_input(i) and ctx.dtype(i) != x.dtype:
            raise InferenceError(f"input {i} has dtype {ctx.dtype(i)}, x has {x.dtype}")
    return x


def _check_len(ctx, i: int, want: Dim, what: str, *alternatives: Dim) -> None:
    """Input i must be 1-D with `want` (or one of `alternatives`) entries, when both are known."""
    if not ctx.has_input(i) or ctx.shape(i) is None:
        return
    shape = ctx.shape(i)
    if len(shape) != 1:
        raise InferenceError(f"{what} must be 1-D, got shape {list(shape)}")
    n = shape[0]
    allowed = [d for d in (want, *alternatives) if isinstance(d, int)]
    if isinstance(n, int) and allowed and n not in allowed:
        raise InferenceError(f"{what} has {n} entries, expected {' or '.join(map(str, allowed))}")


def _channels(x: TensorType) -> Dim:
    if x.shape is not None and len(x.shape) < 2:
        raise InferenceError(f"input must be [N, C, ...], got rank {len(x.shape)}")
    return None if x.shape is None else x.shape[1]


@register("batch_norm", "norm", "Inference-mode batch normalisation of [N, C, ...]: "
          "y = (x - mean) / sqrt(var + epsilon) * scale + bias, per channel.", inputs=(5, 5),
          attrs={"epsilon": _EPS})
def _batch_norm(ctx):
    x = _float_input(ctx, 1, 2, 3, 4)
    c = _channels(x)
    for i, what in enumerate(("scale", "bias", "mean", "var"), 1):
        _check_len(ctx, i, c, what)
    return [x]


@register("instance_norm", "norm", "Normalise each (n, c) plane of [N, C, ...] over its spatial axes, then "
          "scale and shift per channel.", inputs=(3, 3), attrs={"epsilon": _EPS})
def _instance_norm(ctx):
    x = _float_input(ctx, 1, 2)
    c = _channels(x)
    _check_len(ctx, 1, c, "scale")
    _check_len(ctx, 2, c, "bias")
    return [x]


@register("group_norm", "norm", "Normalise each group of C/num_groups channels of [N, C, ...] over the group's "
          "channels and spatial axes, then scale and shift. scale/bias have C entries (per channel) or "
          "num_groups entries (shared by a group's channels; ONNX GroupNormalization-18).",
          inputs=(3, 3), attrs={"num_groups": Attr(int), "epsilon": _EPS})
def _group_norm(ctx):
    x = _float_input(ctx, 1, 2)
    c = _channels(x)
    g = ctx.attr("num_groups")
    if g < 1 or (isinstance(c, int) and c % g):
        raise InferenceError(f"{c} channels do not split into {g} groups")
    _check_len(ctx, 1, c, "scale", g)
    _check_len(ctx, 2, c, "bias", g)
    return [x]


def _trailing_stats(ctx, axis_attr: str = "axis") -> tuple[TensorType, int | None]:
    """The input type and the normalised axis (None when the rank is unknown)."""
    x = ctx.type(0)
    if x.shape is None:
        return x, None
    return x, norm_axis(ctx.attr(axis_attr), len(x.shape))


def _check_broadcasts_to_tail(ctx, i: int, x: TensorType, axis: int | None, what: str) -> None:
    """scale/bias of layer/RMS norm broadcast against the normalised trailing axes."""
    if not ctx.has_input(i) or ctx.shape(i) is None or axis is None or x.shape is None:
        return
    tail, s = x.shape[axis:], ctx.shape(i)
    if len(s) > len(x.shape):
        raise InferenceError(f"{what} of rank {len(s)} does not broadcast to the input's")
    for d, t in zip(reversed(s), reversed(x.shape)):
        if isinstance(d, int) and isinstance(t, int) and d not in (1, t):
            raise InferenceError(f"{what} shape {list(s)} does not broadcast to {list(tail)}")


@register("layer_norm", "norm", "Normalise over axes [axis, rank): y = (x - mean) * inv_std_dev * scale + bias. "
          "Optional outputs 2 and 3 are mean and inv_std_dev (shape x.shape[:axis] + 1s, dtype stash_dtype).",
          inputs=(2, 3), outputs=(1, 3),
          attrs={"axis": Attr(int, -1), "epsilon": _EPS,
                 "stash_dtype": Attr(str, "float32", "dtype of the mean / inv_std_dev outputs")})
def _layer_norm(ctx):
    x = _float_input(ctx, 1, 2)
    x, axis = _trailing_stats(ctx)
    _check_broadcasts_to_tail(ctx, 1, x, axis, "scale")
    _check_broadcasts_to_tail(ctx, 2, x, axis, "bias")
    stash = ctx.attr("stash_dtype")
    if stash not in FLOAT_TYPES:
        raise InferenceError(f"stash_dtype {stash!r} is not a float dtype")
    stat_shape = None if axis is None else (*x.shape[:axis], *([1] * (len(x.shape) - axis)))
    return [x, TensorType(stash, stat_shape), TensorType(stash, stat_shape)]


@register("rms_norm", "norm", "Normalise over axes [axis, rank) by the root mean square: "
          "y = x / sqrt(mean(x^2) + epsilon) * scale.", inputs=(2, 2),
          attrs={"axis": Attr(int, -1), "epsilon": _EPS})
def _rms_norm(ctx):
    x = _float_input(ctx, 1)
    x, axis = _trailing_stats(ctx)
    _check_broadcasts_to_tail(ctx, 1, x, axis, "scale")
    return [x]


@register("mean_variance_norm", "norm", "y = (x - mean) / (std + epsilon), mean and (population) std over `axes`.",
          attrs={"axes": Attr(list, [0, 2, 3]), "epsilon": Attr(float, 1e-9)})
def _mean_variance_norm(ctx):
    x = _float_input(ctx)
    if x.shape is not None:
        for a in ctx.attr("axes"):
            norm_axis(a, len(x.shape), "axes entry")
    return [x]


@register("lrn", "norm", "Local response normalisation across channels of [N, C, ...]: "
          "y = x / (bias + alpha / size * sum of x^2 over the size channels around c) ^ beta.",
          attrs={"size": Attr(int), "alpha": Attr(float, 1e-4), "beta": Attr(float, 0.75),
                 "bias": Attr(float, 1.0)})
def _lrn(ctx):
    x = _float_input(ctx)
    _channels(x)
    if ctx.attr("size") < 1:
        raise InferenceError(f"size {ctx.attr('size')} must be >= 1")
    return [x]


@register("lp_norm", "norm", "y = x / ||x||_p along `axis` (p 1 or 2); a zero norm gives 0.",
          attrs={"axis": Attr(int, -1), "p": Attr(int, 2)})
def _lp_norm(ctx):
    x = _float_input(ctx)
    if ctx.attr("p") not in (1, 2):
        raise InferenceError(f"p must be 1 or 2, got {ctx.attr('p')}")
    if x.shape is not None:
        norm_axis(ctx.attr("axis"), len(x.shape))
    return [x]
