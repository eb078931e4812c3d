"""Session.run checks its feeds and says what was expected."""
from __future__ import annotations

import numpy as np
import pytest
from claw_testing import add_relu, ort_run

import clawdbot
from clawdbot.errors import InputError


@pytest.fixture
def sess():
    return clawdbot.load(add_relu())


def test_metadata(sess):
    assert [(s.name, s.dtype, s.shape) for s in sess.inputs] == [("x", "float32", ("N", 4))]
    assert [(s.name, s.dtype, s.shape) for s in sess.outputs] == [("y", "float32", ("N", 4))]


@pytest.mark.parametrize("batch", [1, 3, 16])
def test_dynamic_batch_matches_onnxruntime(sess, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
    np.testing.assert_allclose(sess.run({"x": x})["y"], ort_run(add_relu(), {"x": x})[0], rtol=1e-6)


def test_wrong_name(sess):
    with pytest.raises(InputError, match=r"missing input\(s\) \['x'\] and unknown input\(s\) \['X'\].*x: float32\[N, 4\]"):
        sess.run({"X": np.zeros((1, 4), np.float32)})


def test_wrong_dtype(sess):
    with pytest.raises(InputError, match="'x' has dtype float64, expected float32"):
        sess.run({"x": np.zeros((1, 4))})


def test_wrong_rank_and_dim(sess):
    with pytest.raises(InputError, match=r"\(rank 1\), expected rank 2"):
        sess.run({"x": np.zeros(4, np.float32)})
    with pytest.raises(InputError, match="axis 1 must be 4"):
        sess.run({"x": np.zeros((2, 5), np.float32)})


def test_not_a_dict(sess):
    with pytest.raises(InputError, match="dict of input name"):
        sess.run([np.zeros((1, 4), np.float32)])


def test_lists_are_converted(sess):
    out = sess.run({"x": [[1.0, 2.0, 3.0, 4.0]]})["y"]
    assert out.dtype == np.float32 and out.shape == (1, 4)
