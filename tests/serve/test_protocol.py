"""KServe v2 wire format: round trips for every datatype, the binary extension's exact byte layouts, what
tritonclient's own encoder and decoder make of ours, and the message of every rejected request."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tritonclient.http as triton
from clawdbot.ir.dtypes import DTYPES
from clawdbot.serve.protocol import (
    DATATYPES,
    HEADER_LENGTH,
    ProtocolError,
    Tensor,
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
    metadata_shape,
    model_metadata,
)

KSERVE_NAMES = {"bool": "BOOL", "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
                "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64", "float16": "FP16",
                "float32": "FP32", "float64": "FP64"}


def sample(dtype: str, shape=(2, 3), seed: int = 0) -> np.ndarray:
    """Values that stress each type: extremes of integer types, fractions and negative zero for floats."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        flat = rng.integers(info.min, info.max, size=int(np.prod(shape)), dtype=dt, endpoint=True)
        flat[:2] = [info.min, info.max]
        return flat.reshape(shape)
    flat = (rng.standard_normal(int(np.prod(shape))) * 100).astype(dt)
    flat[0] = -0.0
    return flat.reshape(shape)


def spec(name: str, dtype: str, shape=("N", 3)) -> Tensor:
    return Tensor(name, dtype, shape)


def test_every_claw_dtype_has_its_kserve_datatype():
    assert DATATYPES == KSERVE_NAMES and set(DATATYPES) == set(DTYPES)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_request_round_trip_every_datatype(dtype, binary):
    x = sample(dtype)
    body, hl = encode_infer_request({"x": x}, binary=binary, request_id="r1")
    assert (hl is None) != binary
    req = decode_infer_request(body, hl, [spec("x", dtype)], [spec("y", dtype)])
    got = req.inputs["x"]
    assert got.dtype == x.dtype and got.shape == x.shape and req.id == "r1"
    np.testing.assert_array_equal(got, x)
    assert np.signbit(got).tolist() == np.signbit(x).tolist()  # -0.0 survives both encodings
    assert got.flags.writeable and got.flags.aligned


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_response_round_trip_every_datatype(dtype, binary):
    y = sample(dtype, (3, 1, 2), seed=1)
    body, hl = encode_infer_response("m", "1", {"y": y}, [("y", binary)], "id7")
    header = json.loads(body[:hl] if hl else body)
    assert header["model_name"] == "m" and header["model_version"] == "1" and header["id"] == "id7"
    assert header["outputs"][0]["datatype"] == KSERVE_NAMES[dtype] and header["outputs"][0]["shape"] == [3, 1, 2]
    got = decode_infer_response(body, hl)["y"]
    assert got.dtype == y.dtype
    np.testing.assert_array_equal(got, y)


def test_binary_request_byte_layout():
    """Two binary inputs and one JSON input, laid out by hand as the extension specifies."""
    header = json.dumps({"inputs": [
        {"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
        {"name": "j", "shape": [1, 2], "datatype": "FP32", "data": [[1.5, -2]]},
        {"name": "b", "shape": [3], "datatype": "BOOL", "parameters": {"binary_data_size": 3}},
        {"name": "h", "shape": [1], "datatype": "FP16", "parameters": {"binary_data_size": 2}},
    ]}).encode()
    body = header + struct.pack("<ii", 1, -2) + b"\x01\x00\x01" + struct.pack("<e", 0.5)
    specs = [spec("a", "int32", (2,)), spec("j", "float32", (1, 2)), spec("b", "bool", (3,)),
             spec("h", "float16", (1,))]
    req = decode_infer_request(body, len(header), specs, [spec("y", "float32")])
    np.testing.assert_array_equal(req.inputs["a"], np.array([1, -2], np.int32))
    np.testing.assert_array_equal(req.inputs["j"], np.array([[1.5, -2]], np.float32))
    np.testing.assert_array_equal(req.inputs["b"], [True, False, True])
    assert req.inputs["h"].dtype == np.float16 and req.inputs["h"][0] == 0.5


def test_binary_response_byte_layout_and_output_selection():
    results = {"y": np.array([[1, 256]], np.int16), "z": np.array([True, False]), "w": np.array([2.5], np.float64)}
    # binary_data_output applies to the outputs that do not say otherwise; the listed order is the response's
    body, hl = encode_infer_response("m", "1", results, [("z", True), ("w", False), ("y", True)])
    header = json.loads(body[:hl])
    assert [o["name"] for o in header["outputs"]] == ["z", "w", "y"]
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 2}
    assert header["outputs"][1]["data"] == [2.5] and "parameters" not in header["outputs"][1]
    assert header["outputs"][2]["parameters"] == {"binary_data_size": 4}
    assert body[hl:] == b"\x01\x00" + struct.pack("<hh", 1, 256)


def test_all_json_response_has_no_header_length():
    body, hl = encode_infer_response("m", "1", {"y": np.arange(3, dtype=np.int64)}, [("y", False)])
    assert hl is None and json.loads(body)["outputs"][0]["data"] == [0, 1, 2]


def test_requested_outputs_and_binary_defaults():
    outs = [spec("y", "float32"), spec("z", "float32")]
    ins = [spec("x", "float32", (1,))]

    def decode(extra: dict) -> list:
        body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], **extra})
        return decode_infer_request(body.encode(), None, ins, outs).outputs

    assert decode({}) == [("y", False), ("z", False)]
    assert decode({"parameters": {"binary_data_output": True}}) == [("y", True), ("z", True)]
    assert decode({"parameters": {"binary_data_output": True},
                   "outputs": [{"name": "z"}, {"name": "y", "parameters": {"binary_data": False}}]}
                  ) == [("z", True), ("y", False)]
    assert decode({"outputs": [{"name": "y", "parameters": {"binary_data": True}}]}) == [("y", True)]


def test_nested_and_empty_json_data():
    ins = [spec("x", "int64", ("N", 2))]
    body = json.dumps({"inputs": [{"name": "x", "shape": [2, 2], "datatype": "INT64", "data": [[1, 2], [3, 4]]}]})
    np.testing.assert_array_equal(decode_infer_request(body.encode(), None, ins, []).inputs["x"], [[1, 2], [3, 4]])
    body = json.dumps({"inputs": [{"name": "x", "shape": [0, 2], "datatype": "INT64", "data": []}]})
    x = decode_infer_request(body.encode(), None, ins, []).inputs["x"]
    assert x.shape == (0, 2) and x.dtype == np.int64


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tritonclient_encoder_and_decoder_agree_with_ours(dtype, binary):
    """tritonclient's own request encoder and response decoder, with no server in between."""
    x = sample(dtype, seed=2)
    inp = triton.InferInput("x", list(x.shape), KSERVE_NAMES[dtype])
    inp.set_data_from_numpy(x, binary_data=binary)
    out = triton.InferRequestedOutput("y", binary_data=binary)
    body, json_size = triton.InferenceServerClient.generate_request_body([inp], outputs=[out], request_id="t")
    req = decode_infer_request(body, json_size, [spec("x", dtype)], [spec("y", dtype)])
    np.testing.assert_array_equal(req.inputs["x"], x)
    assert req.inputs["x"].dtype == x.dtype and req.outputs == [("y", binary)] and req.id == "t"

    resp, hl = encode_infer_response("m", "1", {"y": x}, req.outputs, req.id)
    result = triton.InferResult.from_response_body(resp, header_length=hl)
    got = result.as_numpy("y")
    assert got.dtype == x.dtype and got.shape == x.shape and result.get_response()["id"] == "t"
    np.testing.assert_array_equal(got, x)


def test_tritonclient_default_request_asks_for_binary_outputs():
    inp = triton.InferInput("x", [1, 3], "FP32").set_data_from_numpy(np.ones((1, 3), np.float32))
    body, json_size = triton.InferenceServerClient.generate_request_body([inp])
    req = decode_infer_request(body, json_size, [spec("x", "float32")], [spec("y", "float32"),
                                                                          spec("z", "int64")])
    assert req.outputs == [("y", True), ("z", True)]


def test_metadata_shapes_and_datatypes():
    assert metadata_shape(("N", 3, None, 4)) == [-1, 3, -1, 4] and metadata_shape(()) == []
    assert metadata_shape(None) == [-1]
    meta = model_metadata("m", "1", [spec("x", "uint8", ("batch", 224))], [spec("y", "bool", (5,))])
    assert meta == {"name": "m", "versions": ["1"], "platform": "clawdbot",
                    "inputs": [{"name": "x", "datatype": "UINT8", "shape": [-1, 224]}],
                    "outputs": [{"name": "y", "datatype": "BOOL", "shape": [5]}]}


# -- rejected requests: each message names the input, output or field at fault ----------------------------------
INS = [spec("x", "float32", ("N", 2)), spec("k", "int8", (2,))]
OUTS = [spec("y", "float32")]
GOOD_K = {"name": "k", "shape": [2], "datatype": "INT8", "data": [1, 2]}


def rejected(body, header_length=None, ins=INS) -> ProtocolError:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    with pytest.raises(ProtocolError) as e:
        decode_infer_request(body, header_length, ins, OUTS)
    assert e.value.status == 400
    return e.value


def x_input(**fields) -> dict:
    return {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2], **fields}


@pytest.mark.parametrize("x, message", [
    (x_input(datatype="FP64"), "input 'x': datatype FP64 does not match the model, which expects FP32"),
    (x_input(datatype="BYTES"), "input 'x': datatype BYTES is not supported by clawdbot; the model expects FP32"),
    (x_input(datatype="FLOAT"), "input 'x': unknown datatype 'FLOAT'; the model expects FP32"),
    (x_input(shape=[1, -2]), "input 'x': shape [1, -2] must be a list of non-negative integers"),
    (x_input(shape="1,2"), "input 'x': field 'shape' must be an array, got a string"),
    (x_input(data=[1, 2, 3]), "input 'x': data has 3 elements, shape [1, 2] needs 2"),
    (x_input(data=[[1], [2, 3]]), "input 'x': data is not a rectangular array"),
    (x_input(data=["1", "2"]), "input 'x': data must be numbers for FP32, got strings"),
    (x_input(data=[True, False]), "input 'x': data must be numbers for FP32, got booleans"),
    (x_input(data=[1, None]), "input 'x': data is not a rectangular array of numbers"),
    ({"name": "x", "shape": [1, 2], "datatype": "FP32"}, "input 'x' has neither data nor parameters.binary_data_size"),
    (x_input(parameters={"binary_data_size": 8}), "input 'x' has both data and binary_data_size"),
    (x_input(parameters={"shared_memory_region": "r"}), "input 'x': the shared memory extension is not supported"),
    ({"shape": [1, 2], "datatype": "FP32", "data": [1, 2]}, "inputs[0]: missing field 'name'"),
    (x_input(datatype=None), "input 'x': field 'datatype' must be a string, got null"),
    ({"name": "x", "datatype": "FP32", "data": [1, 2]}, "input 'x': missing field 'shape'"),
])
def test_bad_input_tensor(x, message):
    assert message in str(rejected({"inputs": [x, GOOD_K]}))


@pytest.mark.parametrize("k, message", [
    ({**GOOD_K, "data": [1.5, 2]}, "input 'k': data must be integers for INT8, got non-integer numbers"),
    ({**GOOD_K, "data": [1, 200]}, "input 'k': data has values out of range for INT8"),
    ({**GOOD_K, "data": [1, 2**70]}, "input 'k': data is not a rectangular array of numbers"),
])
def test_bad_integer_data(k, message):
    assert message in str(rejected({"inputs": [x_input(), k]}))


def test_unknown_missing_and_repeated_inputs():
    e = rejected({"inputs": [x_input(), GOOD_K, {**GOOD_K, "name": "nope"}]})
    assert str(e).startswith("unknown input 'nope'; the model's inputs are: x (FP32 [-1, 2]), k (INT8 [2])")
    assert "missing input(s) ['k']" in str(rejected({"inputs": [x_input()]}))
    assert "input 'x' is given twice" in str(rejected({"inputs": [x_input(), x_input(), GOOD_K]}))


@pytest.mark.parametrize("body, message", [
    ('{"inputs": [', "malformed request JSON: Expecting value: line 1 column 13"),
    ("[1, 2]", "request must be a JSON object, got an array"),
    ("{}", "request: missing field 'inputs'"),
    ('{"inputs": {}}', "request: field 'inputs' must be an array, got an object"),
    ('{"inputs": [3]}', "inputs[0] must be an object, got an integer"),
    ('{"id": 5, "inputs": []}', "request: field 'id' must be a string, got an integer"),
    (b'{"inputs": "\xff"}', "request JSON is not UTF-8"),
])
def test_malformed_requests(body, message):
    assert message in str(rejected(body))


def test_bad_requested_outputs():
    def outputs(o) -> str:
        return str(rejected({"inputs": [x_input(), GOOD_K], "outputs": o}))
    assert "unknown output 'nope'; the model's outputs are: y (FP32 [-1, 3])" in outputs([{"name": "nope"}])
    assert "output 'y' is requested twice" in outputs([{"name": "y"}, {"name": "y"}])
    assert "output 'y': the classification extension is not supported" in outputs(
        [{"name": "y", "parameters": {"classification": 3}}])
    assert "output 'y' parameters: field 'binary_data' must be a boolean, got a string" in outputs(
        [{"name": "y", "parameters": {"binary_data": "yes"}}])
    assert "request parameters: field 'binary_data_output' must be a boolean, got an integer" in str(rejected(
        {"inputs": [x_input(), GOOD_K], "parameters": {"binary_data_output": 1}}))


def binary_body(size: int, payload: bytes, dtype: str = "FP32", shape=(1, 2)) -> tuple[bytes, int]:
    header = json.dumps({"inputs": [{"name": "x", "shape": list(shape), "datatype": dtype,
                                     "parameters": {"binary_data_size": size}}, GOOD_K]}).encode()
    return header + payload, len(header)


def test_binary_size_errors():
    body, hl = binary_body(4, b"\0" * 4)
    assert "input 'x': binary_data_size is 4 bytes, but shape [1, 2] of FP32 needs 8" in str(rejected(body, hl))
    body, hl = binary_body(8, b"\0" * 6)
    assert "input 'x': binary_data_size 8 runs past the end of the binary data (6 bytes left" in str(
        rejected(body, hl))
    body, hl = binary_body(8, b"\0" * 10)
    assert "the body has 10 bytes after the JSON header, but the inputs' binary_data_size add up to 8" in str(
        rejected(body, hl))
    assert f"{HEADER_LENGTH} is {len(body) + 1}, but the body has {len(body)} bytes" in str(
        rejected(body, len(body) + 1))
    # binary bytes sent without the header: the JSON parser meets them, and the message says what is missing
    assert f"(a binary request needs the {HEADER_LENGTH} header)" in str(rejected(body))
    body, _ = binary_body(8, b"")
    assert f"input 'x' has binary_data_size 8, but the request has no {HEADER_LENGTH} header" in str(rejected(body))
    body, hl = binary_body(-1, b"")
    assert "binary_data_size -1" in str(rejected(body, hl))
    body, hl = binary_body(True, b"\0")
    assert "input 'x' parameters: field 'binary_data_size' must be an integer, got a boolean" in str(
        rejected(body, hl))


def test_bool_bytes_must_be_0_or_1():
    ins = [spec("x", "bool", (2,)), INS[1]]
    body, hl = binary_body(2, b"\x01\x02", "BOOL", (2,))
    assert "input 'x': BOOL bytes must be 0 or 1" in str(rejected(body, hl, ins))
