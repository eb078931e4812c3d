"""CPU kernels: rnn, gru, lstm.

The input projection x_t w^T (+ the biases that do not depend on the state) is computed for every timestep with
ONE matmul before the loop; the loop over time then does only the recurrent [batch, hidden] x [hidden, gates *
hidden] product and the gate arithmetic. float16 is computed in float32. Sequence lengths are handled with a
per-step mask: a batch entry past its length keeps its state, and its y rows stay zero, which also makes the
reverse direction start at each entry's own last step.
"""
from __future__ import annotations

import numpy as np

from .conv import compute_dtype
from .registry import kernel_factory

_DEFAULTS = {"rnn": ("tanh",), "gru": ("sigmoid", "tanh"), "lstm": ("sigmoid", "tanh", "tanh")}


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; both branches are exact rewrites of 1 / (1 + exp(-x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


# name -> f(x, alpha, beta); alpha/beta are already in x's dtype
_FUNCTIONS = {
    "relu": lambda x, a, b: np.maximum(x, 0),
    "tanh": lambda x, a, b: np.tanh(x),
    "sigmoid": lambda x, a, b: _sigmoid(x),
    "affine": lambda x, a, b: a * x + b,
    "leaky_relu": lambda x, a, b: np.where(x >= 0, x, a * x),
    "thresholded_relu": lambda x, a, b: np.where(x > a, x, 0),
    "scaled_tanh": lambda x, a, b: a * np.tanh(b * x),
    "hard_sigmoid": lambda x, a, b: np.clip(a * x + b, 0, 1),
    "elu": lambda x, a, b: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))),
    "softsign": lambda x, a, b: x / (1 + np.abs(x)),
    "softplus": lambda x, a, b: np.logaddexp(0, x),
}


def _activations(op: str, attrs: dict, directions: int, work: np.dtype) -> list[list]:
    """Per direction, the cell's functions as one-argument callables (alpha/beta bound in `work`)."""
    names = attrs["activations"] or list(_DEFAULTS[op]) * directions
    alphas = attrs["activation_alpha"] or [0.0] * len(names)
    betas = attrs["activation_beta"] or [0.0] * len(names)
    funcs = [lambda x, f=_FUNCTIONS[n], a=work.type(a), b=work.type(b): f(x, a, b)
             for n, a, b in zip(names, alphas, betas)]
    per = len(_DEFAULTS[op])
    return [funcs[d * per:(d + 1) * per] for d in range(directions)]


def _clipper(clip: float, work: np.dtype):
    if clip <= 0:
        return lambda x: x
    lo, hi = work.type(-clip), work.type(clip)
    return lambda x: np.clip(x, lo, hi)


def _scan(cell, xw: np.ndarray, states: tuple, lens: np.ndarray | None, reverse: bool):
    """Run `cell(xw_t, states) -> states` over time; returns (h for every step [seq, batch, hidden], states)."""
    seq = xw.shape[0]
    ys = np.zeros((seq,) + states[0].shape, states[0].dtype)
    for t in (range(seq - 1, -1, -1) if reverse else range(seq)):
        new = cell(xw[t], states)
        if lens is not None:
            live = (t < lens)[:, None]
            new = tuple(np.where(live, n, s) for n, s in zip(new, states))
            ys[t] = np.where(live, new[0], 0)
        else:
            ys[t] = new[0]
        states = new
    return ys, states


def _rnn_cell(w, r, b, acts, clip, hidden):
    rt = r.T
    bias = 0 if b is None else b[:hidden] + b[hidden:]
    f = acts[0]

    def project(x):
        return x @ w.T + bias

    def cell(xw_t, states):
        return (f(clip(xw_t + states[0] @ rt)),)
    return project, cell


def _gru_cell(w, r, b, acts, clip, hidden, linear_before_reset):
    f, g = acts
    h2 = 2 * hidden
    r_zr, r_h = r[:h2].T, r[h2:].T
    if b is None:
        b = np.zeros(6 * hidden, w.dtype)
    wb, rb = b[:3 * hidden], b[3 * hidden:]
    # z and r take both biases up front; h's recurrent bias sits inside the reset product when linear_before_reset.
    in_bias = np.concatenate([wb[:h2] + rb[:h2], wb[h2:]])
    rb_h = rb[h2:]

    def project(x):
        return x @ w.T + in_bias

    def cell(xw_t, states):
        h = states[0]
        zr = f(clip(xw_t[:, :h2] + h @ r_zr))
        z, reset = zr[:, :hidden], zr[:, hidden:]
        if linear_before_reset:
            n = g(clip(xw_t[:, h2:] + reset * (h @ r_h + rb_h)))
        else:
            n = g(clip(xw_t[:, h2:] + (reset * h) @ r_h + rb_h))
        return ((1 - z) * n + z * h,)
    return project, cell


def _lstm_cell(w, r, b, p, acts, clip, hidden, input_forget):
    f, g, hf = acts
    rt = r.T
    bias = 0 if b is None else b[:4 * hidden] + b[4 * hidden:]
    p_i, p_o, p_f = (None, None, None) if p is None else (p[:hidden], p[hidden:2 * hidden], p[2 * hidden:])
    gate = [slice(k * hidden, (k + 1) * hidden) for k in range(4)]  # i, o, f, c

    def project(x):
        return x @ w.T + bias

    def peep(pre, weight, c):
        return pre if weight is None else pre + weight * c

    def cell(xw_t, states):
        h, c = states
        pre = xw_t + h @ rt
        i = f(clip(peep(pre[:, gate[0]], p_i, c)))
        forget = 1 - i if input_forget else f(clip(peep(pre[:, gate[2]], p_f, c)))
        c_new = forget * c + i * g(clip(pre[:, gate[3]]))
        o = f(clip(peep(pre[:, gate[1]], p_o, c_new)))
        return o * hf(c_new), c_new
    return project, cell


def _factory(op: str):
    def factory(node, in_types, out_types):
        attrs = node.attrs
        hidden, direction = attrs["hidden_size"], attrs["direction"]
        reverse = [True] if direction == "reverse" else [False, True] if direction == "bidirectional" else [False]
        work = compute_dtype(in_types[0].dtype)
        acts = _activations(op, attrs, len(reverse), work)
        clip = _clipper(attrs["clip"], work)
        n_states = 2 if op == "lstm" else 1

        def make_cell(d, w, r, b, p):
            if op == "rnn":
                return _rnn_cell(w, r, b, acts[d], clip, hidden)
            if op == "gru":
                return _gru_cell(w, r, b, acts[d], clip, hidden, attrs["linear_before_reset"])
            return _lstm_cell(w, r, b, p, acts[d], clip, hidden, attrs["input_forget"])

        def run(x, w, r, b=None, lens=None, h0=None, c0=None, p=None):
            dtype = x.dtype
            xs = x.astype(work, copy=False)
            zeros = np.zeros((len(reverse), x.shape[1], hidden), work)
            init = [zeros if s is None else s.astype(work, copy=False) for s in (h0, c0)[:n_states]]
            ys, finals = [], []
            for d, rev in enumerate(reverse):
                project, cell = make_cell(d, w[d].astype(work, copy=False), r[d].astype(work, copy=False),
                                          None if b is None else b[d].astype(work, copy=False),
                                          None if p is None else p[d].astype(work, copy=False))
                y, states = _scan(cell, project(xs), tuple(s[d] for s in init), lens, rev)
                ys.append(y)
                finals.append(states)
            outs = [np.stack(ys, axis=1).astype(dtype, copy=False)]
            outs += [np.stack([f[k] for f in finals]).astype(dtype, copy=False) for k in range(n_states)]
            return tuple(outs)
        return run
    factory.__name__ = f"{op}_factory"
    return factory


for _op in ("rnn", "gru", "lstm"):
    kernel_factory(_op)(_factory(_op))
