"""A 6-layer BERT encoder (MiniLM-L6 class) written the way torch.onnx exports BERT.

The transformer benchmark. The point is not only the maths but the *graph
shape* an exporter produces, because that is what the runtime's importer and
fusion passes must recognise:

* embeddings are Gathers; position ids are a constant sliced to the runtime
  sequence length (Shape -> Gather -> Unsqueeze -> Slice), token-type ids a
  constant zero row;
* LayerNormalization (opset 17), or with ``decomposed_layernorm=True`` the
  ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add chain older exports have;
* GELU as Div/Erf/Add/Mul/Mul;
* the attention mask as Unsqueeze/Cast/Sub/Mul added to the scores;
* Q/K/V as MatMul + Add, and shape-driven head split/merge reshapes
  (Shape -> Gather -> Unsqueeze -> Concat -> Reshape) around Transposes.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto

from ._builder import BATCH, GraphBuilder, Stats

HIDDEN = 384
HEADS = 12
FFN = 1536
LAYERS = 6
VOCAB = 30522
MAX_POSITIONS = 512
TYPE_VOCAB = 2
SEQ_LEN = 128
LN_EPS = 1e-12
# Classic BERT exports use -10000; it keeps masked scores finite in fp16 too.
MASK_VALUE = -10000.0
# Init gains that keep random attention peaked and tokens distinct (see _attention, _layer).
QK_GAIN = 2.0
ATTN_OUT_GAIN = 0.5


def _dims(b: GraphBuilder, x: str, *axes: int) -> list[str]:
    """torch's ``x.size(i)`` for each axis as a 1-element int64 tensor."""
    shape = b.op("Shape", [x])
    dims = []
    for axis in axes:
        size = b.op("Gather", [shape, b.const(axis, np.int64)], axis=0)  # a scalar
        dims.append(b.op("Unsqueeze", [size, b.const([0], np.int64)]))
    return dims


def _split_heads(b: GraphBuilder, x: str, heads: int, head_dim: int, perm: list[int]) -> str:
    """[B, S, H*D] -> [B, H, S, D] (or [B, H, D, S] for keys, via ``perm``)."""
    batch, seq = _dims(b, x, 0, 1)
    shape = b.op("Concat", [batch, seq, b.const([heads], np.int64), b.const([head_dim], np.int64)], axis=0)
    return b.op("Transpose", [b.op("Reshape", [x, shape])], perm=perm)


def _merge_heads(b: GraphBuilder, x: str, hidden: int) -> str:
    """[B, H, S, D] -> [B, S, H*D]."""
    x = b.op("Transpose", [x], perm=[0, 2, 1, 3])
    batch, seq = _dims(b, x, 0, 1)
    shape = b.op("Concat", [batch, seq, b.const([hidden], np.int64)], axis=0)
    return b.op("Reshape", [x, shape])


def _gelu(b: GraphBuilder, x: str) -> str:
    """Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)), as torch exports it."""
    with b.scope("intermediate_act_fn"):
        erf = b.op("Erf", [b.op("Div", [x, b.const(math.sqrt(2.0))])])
        y = b.op("Mul", [b.op("Mul", [x, b.op("Add", [erf, b.const(1.0)])]), b.const(0.5)])
    # GELU of a unit Gaussian keeps E[y^2] ~ 0.43; the next dense layer needs it.
    return b.track(y, Stats(0.28, 0.35))


def _attention(b: GraphBuilder, x: str, mask: str, hidden: int, heads: int) -> str:
    head_dim = hidden // heads
    with b.scope("self"):
        # Unit-variance Q and K give scores of std 1: over 128 keys that is
        # almost uniform attention, which averages every token into the same
        # vector (random transformers' rank collapse). Trained attention is
        # peaked, so Q/K are scaled up to give scores of std ~QK_GAIN**2.
        q = _split_heads(b, b.dense(x, hidden, hidden, name="query", gain=QK_GAIN), heads, head_dim, [0, 2, 1, 3])
        k = _split_heads(b, b.dense(x, hidden, hidden, name="key", gain=QK_GAIN), heads, head_dim, [0, 2, 3, 1])
        v = _split_heads(b, b.dense(x, hidden, hidden, name="value"), heads, head_dim, [0, 2, 1, 3])
        scores = b.op("Div", [b.op("MatMul", [q, k]), b.const(math.sqrt(head_dim))])
        probs = b.op("Softmax", [b.op("Add", [scores, mask])], axis=-1)
        context = _merge_heads(b, b.op("MatMul", [probs, v]), hidden)
    return context


def _layer(b: GraphBuilder, x: str, mask: str, cfg: dict, decomposed: bool) -> str:
    hidden = cfg["hidden"]
    with b.scope("attention"):
        context = _attention(b, x, mask, hidden, cfg["heads"])
        with b.scope("output"):
            # Down-weighted like the Q/K gain above: the attention output is
            # largely shared by all tokens, and at full weight it would pull
            # every position towards the same vector layer after layer.
            y = b.op("Add", [b.dense(context, hidden, hidden, name="dense", gain=ATTN_OUT_GAIN), x])
            x = b.layernorm(y, hidden, eps=LN_EPS, decomposed=decomposed)
    with b.scope("intermediate"):
        h = _gelu(b, b.dense(x, hidden, cfg["ffn"], name="dense"))
    with b.scope("output"):
        y = b.op("Add", [b.dense(h, cfg["ffn"], hidden, name="dense"), x])
        return b.layernorm(y, hidden, eps=LN_EPS, decomposed=decomposed)


def _embeddings(b: GraphBuilder, input_ids: str, cfg: dict, decomposed: bool) -> str:
    hidden = cfg["hidden"]
    with b.scope("embeddings"):
        # Embedding tables are N(0, 1): the LayerNorm right after makes their
        # scale irrelevant, and unit scale keeps the three terms comparable.
        word = b.param("word_embeddings.weight", b.normal((cfg["vocab_size"], hidden), 1.0))
        pos_table = b.param("position_embeddings.weight", b.normal((cfg["max_positions"], hidden), 1.0))
        type_table = b.param("token_type_embeddings.weight", b.normal((TYPE_VOCAB, hidden), 1.0))
        # Registered buffers in HF BERT: position ids 0..max-1 and zero type ids,
        # both sliced to the input's length at run time.
        position_ids = b.param("position_ids", np.arange(cfg["max_positions"], dtype=np.int64)[None, :])
        type_ids = b.param("token_type_ids", np.zeros((1, cfg["max_positions"]), dtype=np.int64))
        (seq,) = _dims(b, input_ids, 1)
        start, axis = b.const([0], np.int64), b.const([1], np.int64)
        positions = b.op("Slice", [position_ids, start, seq, axis])
        types = b.op("Slice", [type_ids, start, seq, axis])
        emb = b.op("Gather", [word, input_ids], axis=0)
        emb = b.op("Add", [emb, b.op("Gather", [type_table, types], axis=0)])
        emb = b.op("Add", [emb, b.op("Gather", [pos_table, positions], axis=0)])
        return b.layernorm(emb, hidden, eps=LN_EPS, decomposed=decomposed)


def _extended_mask(b: GraphBuilder, attention_mask: str, mask_value: float) -> str:
    """[B, S] 1/0 mask -> [B, 1, 1, S] additive bias: 0 to keep, ``mask_value`` to drop."""
    m = b.op("Unsqueeze", [attention_mask, b.const([1, 2], np.int64)])
    m = b.op("Cast", [m], to=TensorProto.FLOAT)
    return b.op("Mul", [b.op("Sub", [b.const(1.0), m]), b.const(mask_value)])


def bert_encoder(
    *,
    seed: int = 0,
    num_layers: int = LAYERS,
    hidden: int = HIDDEN,
    heads: int = HEADS,
    ffn: int = FFN,
    vocab_size: int = VOCAB,
    max_positions: int = MAX_POSITIONS,
    seq_len: int = SEQ_LEN,
    decomposed_layernorm: bool = False,
    mask_value: float = MASK_VALUE,
) -> onnx.ModelProto:
    """6-layer BERT encoder, hidden 384, 12 heads, seq 128 (MiniLM-L6 class), ~22.6M params."""
    if hidden % heads:
        raise ValueError(f"hidden ({hidden}) must be a multiple of heads ({heads})")
    if seq_len > max_positions:
        raise ValueError(f"seq_len ({seq_len}) exceeds max_positions ({max_positions})")
    cfg = dict(hidden=hidden, heads=heads, ffn=ffn, vocab_size=vocab_size, max_positions=max_positions)
    b = GraphBuilder("bert_encoder", seed=seed, doc="BERT encoder, MiniLM-L6 class (random weights, clawdbot zoo)")
    input_ids = b.add_input("input_ids", TensorProto.INT64, [BATCH, seq_len])
    attention_mask = b.add_input("attention_mask", TensorProto.INT64, [BATCH, seq_len])
    x = _embeddings(b, input_ids, cfg, decomposed_layernorm)
    mask = _extended_mask(b, attention_mask, mask_value)
    with b.scope("encoder"):
        for i in range(num_layers):
            with b.scope("layer"), b.scope(i):
                x = _layer(b, x, mask, cfg, decomposed_layernorm)
    b.add_output(x, "last_hidden_state", TensorProto.FLOAT, [BATCH, seq_len, hidden])
    return b.finish()
