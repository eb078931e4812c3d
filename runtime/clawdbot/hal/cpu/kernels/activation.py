"""CPU kernels: activations.

float16 inputs are computed in float32 and rounded once at the end (`_in_float32`): chaining exp/divide in
half precision loses several ulps and overflows early (exp(12) > 65504). Constants from attributes are cast to
the computing dtype so numpy never promotes the result to float64.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .elementwise import erf
from .registry import kernel


def _in_float32(fn):
    """Run `fn` on float16 inputs in float32; return exactly the input's dtype and shape (0-D included)."""
    @functools.wraps(fn)
    def wrapper(x, *args, **attrs):
        work = x.astype(np.float32) if x.dtype == np.float16 else x
        extra = [a.astype(np.float32) if a is not None and a.dtype == np.float16 else a for a in args]
        return np.asarray(fn(work, *extra, **attrs), dtype=x.dtype)
    return wrapper


def _c(value: float, x: np.ndarray):
    """An attribute constant in x's dtype."""
    return x.dtype.type(value)


def _sigmoid(x):
    # sigmoid(x) = (1 + tanh(x / 2)) / 2 exactly; tanh never overflows, and this is one transcendental pass
    # plus in-place arithmetic (4-5x faster than the exp/where/divide form on a 1.2M-element tensor).
    half = _c(0.5, x)
    y = np.multiply(x, half, out=np.empty_like(x))  # out= keeps 0-d inputs arrays
    np.tanh(y, out=y)
    y *= half
    y += half
    return y


def _softplus(x):
    return np.logaddexp(_c(0, x), x)


@kernel("relu")
def relu(x):
    return np.maximum(x, np.zeros((), x.dtype))


@kernel("leaky_relu")
@_in_float32
def leaky_relu(x, alpha):
    return np.where(x >= 0, x, x * _c(alpha, x))


@kernel("prelu")
@_in_float32
def prelu(x, slope):
    return np.where(x >= 0, x, x * slope)


@kernel("sigmoid")
@_in_float32
def sigmoid(x):
    return _sigmoid(x)


@kernel("hard_sigmoid")
@_in_float32
def hard_sigmoid(x, alpha, beta):
    return np.clip(x * _c(alpha, x) + _c(beta, x), _c(0, x), _c(1, x))


@kernel("hard_swish")
@_in_float32
def hard_swish(x):
    return x * np.clip(x / _c(6, x) + _c(0.5, x), _c(0, x), _c(1, x))


@kernel("tanh")
@_in_float32
def tanh(x):
    return np.tanh(x)


@kernel("elu")
@_in_float32
def elu(x, alpha):
    return np.where(x > 0, x, _c(alpha, x) * np.expm1(np.minimum(x, _c(0, x))))


@kernel("selu")
@_in_float32
def selu(x, alpha, gamma):
    neg = _c(alpha, x) * np.expm1(np.minimum(x, _c(0, x)))
    return _c(gamma, x) * np.where(x > 0, x, neg)


@kernel("celu")
@_in_float32
def celu(x, alpha):
    a = _c(alpha, x)
    return np.maximum(x, _c(0, x)) + np.minimum(_c(0, x), a * np.expm1(np.minimum(x, _c(0, x)) / a))


@kernel("gelu")
@_in_float32
def gelu(x, approximate):
    half = _c(0.5, x)
    if approximate == "tanh":
        inner = _c(math.sqrt(2 / math.pi), x) * (x + _c(0.044715, x) * x * x * x)
        return half * x * (_c(1, x) + np.tanh(inner))
    return half * x * (_c(1, x) + erf(x * _c(1 / math.sqrt(2), x)))


@kernel("softplus")
@_in_float32
def softplus(x):
    return _softplus(x)


@kernel("softsign")
@_in_float32
def softsign(x):
    return x / (_c(1, x) + np.abs(x))


@kernel("mish")
@_in_float32
def mish(x):
    return x * np.tanh(_softplus(x))


@kernel("swish")
@_in_float32
def swish(x, alpha):
    return x * _sigmoid(x * _c(alpha, x))


@kernel("thresholded_relu")
@_in_float32
def thresholded_relu(x, alpha):
    return np.where(x > _c(alpha, x), x, _c(0, x))


@kernel("shrink")
def shrink(x, lambd, bias):
    # Integers are compared and shifted in float64 (lambd and bias are real numbers), then cast back.
    w = x.astype(np.float32) if x.dtype == np.float16 else x.astype(np.float64) if x.dtype.kind in "iu" else x
    lam, b = w.dtype.type(lambd), w.dtype.type(bias)
    y = np.where(w < -lam, w + b, np.where(w > lam, w - b, w.dtype.type(0)))
    return np.asarray(y.astype(x.dtype))


# -- along one axis ---------------------------------------------------------------------------------------------
@kernel("softmax")
@_in_float32
def softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@kernel("log_softmax")
@_in_float32
def log_softmax(x, axis):
    d = x - np.max(x, axis=axis, keepdims=True)
    return d - np.log(np.sum(np.exp(d), axis=axis, keepdims=True))


@kernel("hardmax")
def hardmax(x, axis):
    if x.size == 0:
        return np.zeros(x.shape, dtype=x.dtype)
    first = np.expand_dims(np.argmax(x, axis=axis), axis)  # argmax picks the first of tied maxima
    out = np.zeros(x.shape, dtype=x.dtype)
    np.put_along_axis(out, first, 1, axis=axis)
    return out
