"""ONNX data-movement ops through clawdbot, compared with onnxruntime on one-node models.

Covers each op's opset forms (attributes that became inputs: Slice 10, Squeeze/Unsqueeze/Split 13, Pad 11/18),
shape parameters given as constants and as run-time inputs, negative axes/steps, clamping, and the symbolic
dims that reshape-likes must keep. conftest.py sets CLAWDBOT_CHECK=1 (each kernel's output is checked against
inference); the helper asserts that it is on.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, i64, one_node_model

import clawdbot
from clawdbot.errors import UnsupportedOpsError
from clawdbot.hal.cpu.kernels import movement as kernels
from clawdbot.importers.onnx import import_onnx

RNG = np.random.default_rng(0)
model = partial(one_node_model, opset=18, ir_version=9)
check = assert_matches_ort  # data movement is exact


def run(op, x, consts=None, runtime=None, **kwargs):
    """Check `op` on x with parameters as initializers (`consts`) or graph inputs (`runtime`)."""
    inputs = {"x": x, **(runtime or {})}
    return check(model(op, inputs, consts, **kwargs), inputs)


X4 = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


# -- reshape / flatten -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", [(6, 20), (-1,), (0, -1, 5), (2, 0, 0, 5), (5, 4, 3, 2), (-1, 60), (0, 0, -1)])
@pytest.mark.parametrize("as_input", [False, True])
def test_reshape(target, as_input):
    shape = {"shape": i64(*target)}
    run("Reshape", X4, consts=None if as_input else shape, runtime=shape if as_input else None)


def test_reshape_allowzero_empty():
    x = np.zeros((0, 3), np.float32)
    run("Reshape", x, consts={"shape": i64(3, 0)}, allowzero=1)


def test_reshape_returns_a_view():
    y = kernels.reshape(X4, i64(0, -1))
    assert np.shares_memory(y, X4)


@pytest.mark.parametrize("axis", [0, 1, 2, 3, 4, -1, -4])
@pytest.mark.parametrize("opset", [9, 13])
def test_flatten(axis, opset):
    if opset < 11 and axis < 0:
        pytest.skip("negative axes arrived in opset 11")
    run("Flatten", X4, opset=opset, axis=axis)


@pytest.mark.parametrize("declared, axis, expect", [
    (["batch", 3, 4, 5], 1, ("batch", 60)), (["batch", 3, 4, 5], 2, (None, 20)), (["batch", 3, 4, 5], 0, (1, None)),
    (["batch", "c", 4, 5], 1, ("batch", None))])  # both sides dynamic: not a reshape, the flatten op
def test_flatten_symbolic_batch(declared, axis, expect):
    m = model("Flatten", {"x": X4}, input_shapes={"x": declared}, axis=axis)
    assert import_onnx(m).types["y"].shape == expect
    check(m, {"x": X4})


# -- transpose / concat / split --------------------------------------------------------------------------------
@pytest.mark.parametrize("perm", [None, (0, 1, 2, 3), (3, 1, 0, 2), (0, 2, 3, 1), (1, 0, 3, 2)])
def test_transpose(perm):
    run("Transpose", X4, **({} if perm is None else {"perm": list(perm)}))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_concat(axis, dtype):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for s in shapes[1:]:
        s[axis] += len(s)  # the parts differ along the concat axis only
    parts = {f"x{k}": (RNG.standard_normal(s) > 0).astype(dtype) * 3 for k, s in enumerate(shapes)}
    check(model("Concat", parts, axis=axis), parts)


@pytest.mark.parametrize("opset, sizes, axis, n", [
    (11, None, 1, 2), (11, [1, 5], -1, 2), (13, None, 0, 2), (13, [3, 0, 2], 2, 3),
    (18, None, 3, 2), (18, None, 2, 3)])  # 18 with 3 parts of 5: uneven, the last one smaller
def test_split(opset, sizes, axis, n):
    x = RNG.standard_normal((2, 4, 5, 6)).astype(np.float32)
    attrs = {"axis": axis}
    consts = None
    if sizes is not None and opset < 13:
        attrs["split"] = sizes
    elif sizes is not None:
        consts = {"split": i64(*sizes)}
    if opset >= 18 and sizes is None:
        attrs["num_outputs"] = n
    run("Split", x, consts=consts, opset=opset, n_out=n, **attrs)


# -- slice ------------------------------------------------------------------------------------------------------
SLICES = [  # starts, ends, axes, steps
    ([0, 1], [2, 3], None, None),
    ([1], [1000], [-1], None),
    ([-3, 0], [-1, 9], [2, 3], [1, 2]),
    ([-1], [-1000], [3], [-1]),
    ([4, 3], [0, -10], [3, 2], [-2, -1]),
    ([2**62], [2**63 - 1], [1], [1]),
    ([0], [-2**63], [0], [-1]),
]


@pytest.mark.parametrize("starts, ends, axes, steps", SLICES)
@pytest.mark.parametrize("as_input", [False, True])
def test_slice(starts, ends, axes, steps, as_input):
    params = {"starts": i64(*starts), "ends": i64(*ends)}
    if axes is not None:
        params["axes"] = i64(*axes)
    if steps is not None:
        params["steps"] = i64(*steps)
    run("Slice", X4, consts=None if as_input else params, runtime=params if as_input else None)


def test_slice_attribute_form():
    run("Slice", X4, opset=9, starts=[1, -3], ends=[3, 100], axes=[1, 3])


def test_slice_keeps_symbolic_dims():
    m = model("Slice", {"x": X4}, {"starts": i64(0, 1), "ends": i64(2**63 - 1, 3), "axes": i64(0, 2)},
              input_shapes={"x": ["batch", 3, "seq", 5]})
    assert import_onnx(m).types["y"].shape == ("batch", 3, None, 5)


# -- squeeze / unsqueeze / expand / tile -----------------------------------------------------------------------
X1 = RNG.standard_normal((1, 3, 1, 4)).astype(np.float32)


@pytest.mark.parametrize("axes", [None, [0], [2, 0], [-2]])
@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze(axes, opset):
    if axes is None:
        run("Squeeze", X1, opset=opset)
    elif opset < 13:
        run("Squeeze", X1, opset=opset, axes=axes)
    else:
        run("Squeeze", X1, consts={"axes": i64(*axes)}, opset=opset)


@pytest.mark.parametrize("axes", [[0], [4], [-1], [0, 3], [5, 1, -7]])
@pytest.mark.parametrize("opset", [11, 13])
def test_unsqueeze(axes, opset):
    if opset < 13:
        run("Unsqueeze", X1, opset=opset, axes=axes)
    else:
        run("Unsqueeze", X1, consts={"axes": i64(*axes)}, opset=opset)


@pytest.mark.parametrize("shape", [(1, 3, 6, 4), (2, 1, 3, 1, 4), (3, 1), (4,)])
def test_expand(shape):
    run("Expand", X1, consts={"shape": i64(*shape)})


@pytest.mark.parametrize("reps", [(1, 1, 1, 1), (2, 1, 3, 2), (1, 0, 1, 1)])
def test_tile(reps):
    run("Tile", X1, runtime={"repeats": i64(*reps)})


# -- pad --------------------------------------------------------------------------------------------------------
PADS = [(0, 1, 2, 0, 0, 1, 0, 3), (1, 0, 0, 2, 1, 2, 3, 0), (0, 0, -1, 1, 0, 1, 2, -2)]


@pytest.mark.parametrize("pads", PADS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad(pads, mode):
    if mode != "constant" and min(pads) < 0:
        pytest.skip("onnxruntime crops with negative pads in constant mode only")
    x = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    consts = {"pads": i64(*pads)}
    if mode == "constant":
        consts["value"] = np.array(1.5, np.float32)
    run("Pad", x, consts=consts, opset=19, mode=mode)


def test_pad_axes_input():
    x = RNG.integers(-9, 9, (3, 4, 5)).astype(np.int32)
    run("Pad", x, consts={"pads": i64(1, 2, 3, 0), "value": np.array(7, np.int32), "axes": i64(-1, 0)}, opset=18)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_attribute_form(mode):
    run("Pad", X4, opset=10, mode=mode, pads=[0, 0, 1, 2, 0, 1, 2, 1], value=-2.0)


# -- space <-> depth --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space(mode):
    x = RNG.standard_normal((2, 8, 3, 4)).astype(np.float32)
    run("DepthToSpace", x, blocksize=2, mode=mode)


@pytest.mark.parametrize("block", [1, 2])
def test_space_to_depth(block):
    x = RNG.standard_normal((2, 3, 4, 6)).astype(np.float32)
    run("SpaceToDepth", x, blocksize=block)


# -- dropout ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset, n_out", [(7, 1), (13, 1), (13, 2)])
def test_dropout_is_identity(opset, n_out):
    attrs = {"ratio": 0.3} if opset < 12 else {}
    run("Dropout", X4, opset=opset, n_out=n_out, **attrs)


@pytest.mark.parametrize("opset, mask_dtype", [(7, "float32"), (10, "bool")])
def test_dropout_old_mask_keeps_everything(opset, mask_dtype):
    # onnxruntime fills the pre-12 mask with zeros; the onnx reference evaluator (and onnxruntime from opset
    # 12 on) report every element as kept, which is what inference does.
    ours = clawdbot.load(model("Dropout", {"x": X4}, n_out=2, opset=opset)).run({"x": X4})
    np.testing.assert_array_equal(ours["y0"], X4)
    assert ours["y1"].dtype == mask_dtype and ours["y1"].shape == X4.shape and ours["y1"].all()


def test_dropout_with_training_mode_false():
    consts = {"ratio": np.array(0.4, np.float32), "training_mode": np.array(False)}
    run("Dropout", X4, consts=consts, opset=13, n_out=2)


def test_dropout_in_training_mode_is_unsupported():
    m = model("Dropout", {"x": X4}, {"ratio": np.array(0.4, np.float32), "training_mode": np.array(True)})
    with pytest.raises(UnsupportedOpsError, match="Dropout"):
        import_onnx(m)


# -- reverse_sequence / center_crop_pad / compress / col2im ----------------------------------------------------
@pytest.mark.parametrize("batch_axis, time_axis", [(1, 0), (0, 1)])
def test_reverse_sequence(batch_axis, time_axis):
    x = RNG.standard_normal((4, 4, 3)).astype(np.float32)
    run("ReverseSequence", x, consts={"lens": i64(4, 1, 3, 2)}, batch_axis=batch_axis,
        time_axis=time_axis)


@pytest.mark.parametrize("shape, axes", [((3, 4, 5), None), ((6, 2), [1, -1]), ((5, 3), [0, 2])])
def test_center_crop_pad(shape, axes):
    x = RNG.standard_normal((4, 3, 4)).astype(np.float32)
    attrs = {} if axes is None else {"axes": axes}
    run("CenterCropPad", x, consts={"shape": i64(*shape)}, **attrs)


@pytest.mark.parametrize("axis", [None, 0, 1, -1])
def test_compress(axis):
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    cond = {"cond": np.array([True, False, True])}
    attrs = {} if axis is None else {"axis": axis}
    run("Compress", x, runtime=cond, **attrs)


@pytest.mark.parametrize("attrs", [{}, {"strides": [2, 1]}, {"pads": [1, 0, 1, 2]}, {"dilations": [2, 1]}])
def test_col2im(attrs):
    image, block = i64(6, 5), i64(2, 3)
    s, d = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    p = attrs.get("pads", [0, 0, 0, 0])
    counts = [(image[k] + p[k] + p[k + 2] - d[k] * (block[k] - 1) - 1) // s[k] + 1 for k in range(2)]
    x = RNG.standard_normal((2, 3 * 6, counts[0] * counts[1])).astype(np.float32)
    m = model("Col2Im", {"x": x}, {"image": image, "block": block}, **attrs)
    check(m, {"x": x}, rtol=1e-5, atol=1e-5)  # sums: order may differ from ORT's


def test_identity_keeps_int_values():
    run("Identity", i64(3, 1, 2))


@pytest.mark.parametrize("dtype", ["float16", "uint8", "int8", "bool"])
def test_dtypes_pass_through(dtype):
    x = (RNG.standard_normal((2, 3, 4)) * 4).astype(dtype)
    run("Transpose", x, perm=[2, 0, 1])
    run("Reshape", x, consts={"shape": i64(4, -1)})
