"""Benchmark model zoo: standard architectures built as ONNX from code.

Benchmarks and end-to-end tests need realistic models, but the runtime must
not depend on torch or on downloading weights. The zoo writes each network
directly with ``onnx.helper`` - same layer structure, parameter count and
exporter-style graph patterns as the real thing, with deterministic random
weights drawn from a seed. The numbers are meaningless; the compute, memory
traffic and graph shapes are the real ones.

    >>> from clawdbot.tools import zoo
    >>> model = zoo.build("mobilenet_v2", seed=0)
    >>> feeds = zoo.example_inputs("mobilenet_v2", batch=2)
    >>> zoo.save("resnet50", "resnet50.onnx")

Every CNN takes ``input`` float32 [batch, 3, 224, 224] and returns ``logits``
[batch, 1000]; ``bert_encoder`` takes ``input_ids`` / ``attention_mask``
int64 [batch, 128] and returns ``last_hidden_state`` [batch, 128, 384].
``batch`` is a symbolic dimension. Opset 17, IR version 8.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable

import numpy as np
import onnx

from . import bert
from ._builder import IR_VERSION, OPSET, parameter_count
from .bert import bert_encoder
from .efficientnet import efficientnet_b0
from .mobilenet import mobilenet_v2, mobilenet_v3_small
from .resnet import resnet50
from .squeezenet import squeezenet1_1

__all__ = [
    "IR_VERSION",
    "MODELS",
    "OPSET",
    "build",
    "example_inputs",
    "parameter_count",
    "save",
    "write_model",
]

MODELS: dict[str, Callable[..., onnx.ModelProto]] = {
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3_small": mobilenet_v3_small,
    "efficientnet_b0": efficientnet_b0,
    "squeezenet1_1": squeezenet1_1,
    "bert_encoder": bert_encoder,
}


def parse_names(spec: str) -> list[str]:
    """Comma-separated zoo model names (a benchmark's --models), checked: ValueError names the unknown ones."""
    names = [m.strip() for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown or not names:
        raise ValueError(f"unknown model {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(sorted(MODELS))}")
    return names


def _check_name(name: str) -> Callable[..., onnx.ModelProto]:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


def build(name: str, *, seed: int = 0, **kw) -> onnx.ModelProto:
    """Build model ``name`` with weights drawn from ``seed``.

    Extra keyword arguments go to the architecture's builder (for instance
    ``num_classes``, or ``decomposed_layernorm=True`` / ``num_layers`` for
    ``bert_encoder``). The same name, seed and options give the same bytes.
    """
    return _check_name(name)(seed=seed, **kw)


def save(name: str, path: str | os.PathLike, **kw) -> str:
    """Build ``name`` (``kw`` as for :func:`build`) and write it atomically to ``path``."""
    return write_model(build(name, **kw), path)


def write_model(model: onnx.ModelProto, path: str | os.PathLike) -> str:
    """Write ``model`` to ``path`` atomically; returns the path.

    The bytes go to a temporary file in the destination directory and are
    then renamed over ``path``, so a concurrent reader (or a crash mid-write)
    never sees a truncated model.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # Not tempfile.mkstemp: its 0600 mode would survive the rename, while a
    # plain open honours the umask like any other written file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def example_inputs(name: str, batch: int = 1, seed: int = 0, **kw) -> dict[str, np.ndarray]:
    """Plausible random inputs for ``name``, keyed by graph input name.

    Images are N(0, 1) (what a normalised photo roughly looks like). Token
    ids are uniform over the vocabulary, framed by [CLS] ... [SEP], and every
    row ends in padding (mask 0, id 0) of a different length, so masking is
    actually exercised. ``kw`` takes the same shape options as :func:`build`
    (``seq_len``, ``vocab_size``); others are ignored.
    """
    _check_name(name)
    rng = np.random.default_rng(seed)
    if name == "bert_encoder":
        return _token_inputs(rng, batch, kw.get("seq_len", bert.SEQ_LEN), kw.get("vocab_size", bert.VOCAB))
    return {"input": rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)}


# Special token ids of the BERT uncased vocabulary.
_PAD, _CLS, _SEP = 0, 101, 102


def _token_inputs(rng: np.random.Generator, batch: int, seq_len: int, vocab: int) -> dict[str, np.ndarray]:
    ids = rng.integers(0, vocab, size=(batch, seq_len), dtype=np.int64)
    mask = np.zeros((batch, seq_len), dtype=np.int64)
    # Each row keeps between half and all-but-one of its positions (a
    # one-token sequence cannot be padded and stays whole).
    if seq_len > 1:
        lengths = rng.integers(max(1, seq_len // 2), seq_len, size=batch)
    else:
        lengths = np.ones(batch, dtype=np.int64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        ids[row, length:] = _PAD
        if vocab > _SEP and length >= 2:
            ids[row, 0], ids[row, length - 1] = _CLS, _SEP
    return {"input_ids": ids, "attention_mask": mask}
