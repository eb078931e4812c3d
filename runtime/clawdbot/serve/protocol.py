"""The Open Inference Protocol (KServe v2) REST messages, with Triton's binary tensor data extension.

Pure functions from bytes to arrays and back, so every byte layout can be tested without a socket. The
server decides what to do with a ProtocolError; its message names the input, output or field at fault.

Binary extension, as tritonclient speaks it: a request whose body holds more than its JSON carries an
`Inference-Header-Content-Length` header (the JSON's length); each binary input has
`parameters.binary_data_size` and its bytes follow the JSON in the order the inputs are listed. Outputs are
binary where the request's output entry says `binary_data: true`, or, for outputs without that parameter,
where the request's `parameters.binary_data_output` is true; the response then carries the same header.
Tensor bytes are little-endian and row-major; a BOOL element is one byte, 0 or 1.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ClawError

# claw dtype -> KServe datatype. BYTES and BF16 exist in the protocol but no claw model takes them.
DATATYPES: dict[str, str] = {
    "bool": "BOOL",
    "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "float16": "FP16", "float32": "FP32", "float64": "FP64",
}
NUMPY_OF: dict[str, str] = {v: k for k, v in DATATYPES.items()}
UNSUPPORTED_DATATYPES = frozenset({"BYTES", "BF16"})

HEADER_LENGTH = "Inference-Header-Content-Length"


class ProtocolError(ClawError):
    """A request the protocol (or this model) cannot take; the server answers it with `status`."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Tensor:
    """What the protocol needs of a model input or output (session IOSpecs fit)."""
    name: str
    dtype: str
    shape: Sequence[Any] | None


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    # (output name, as binary), in the order the response lists them
    outputs: list[tuple[str, bool]]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def datatype_of(dtype: str) -> str:
    try:
        return DATATYPES[dtype]
    except KeyError:
        raise ProtocolError(f"dtype {dtype!r} has no KServe datatype", 500) from None


def metadata_shape(shape: Sequence[Any] | None) -> list[int]:
    """KServe shapes say -1 for every dimension that is not fixed (symbolic or unknown)."""
    if shape is None:
        return [-1]  # rank unknown: the protocol has no way to say so; one variable dim is the nearest
    return [d if isinstance(d, int) else -1 for d in shape]


def _describe(t: Tensor) -> str:
    return f"{t.name} ({datatype_of(t.dtype)} {metadata_shape(t.shape)})"


def server_metadata(version: str) -> dict[str, Any]:
    return {"name": "clawdbot", "version": version, "extensions": ["binary_tensor_data"]}


def model_metadata(name: str, version: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor]) -> dict[str, Any]:
    def io(t: Tensor) -> dict[str, Any]:
        return {"name": t.name, "datatype": datatype_of(t.dtype), "shape": metadata_shape(t.shape)}
    return {"name": name, "versions": [version], "platform": "clawdbot",
            "inputs": [io(t) for t in inputs], "outputs": [io(t) for t in outputs]}


def error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


# -- requests ----------------------------------------------------------------------------------------------
def _field(obj: dict, key: str, kind: type, where: str, *, required: bool = True):
    if key not in obj:
        if required:
            raise ProtocolError(f"{where}: missing field {key!r}")
        return None
    value = obj[key]
    # bool is an int to Python, never to the protocol
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{where}: field {key!r} must be {_json_name(kind.__name__)}, got {_json_type(value)}")
    return value


def _json_name(py: str) -> str:
    return {"dict": "an object", "list": "an array", "str": "a string", "int": "an integer",
            "bool": "a boolean"}.get(py, py)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _json_name(type(value).__name__)


def _shape(t: dict, where: str) -> tuple[int, ...]:
    shape = _field(t, "shape", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ProtocolError(f"{where}: shape {shape} must be a list of non-negative integers")
    return tuple(shape)


def _check_datatype(datatype: str, spec: Tensor, where: str) -> None:
    expected = datatype_of(spec.dtype)
    if datatype == expected:
        return
    if datatype in UNSUPPORTED_DATATYPES:
        raise ProtocolError(f"{where}: datatype {datatype} is not supported by clawdbot; the model expects "
                            f"{expected}")
    if datatype not in NUMPY_OF:
        raise ProtocolError(f"{where}: unknown datatype {datatype!r}; the model expects {expected}")
    raise ProtocolError(f"{where}: datatype {datatype} does not match the model, which expects {expected}")


def _from_json_data(data: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    # Nested arrays are allowed as well as flat row-major ones; only the element count must match the shape.
    try:
        arr = np.asarray(data)
    except ValueError:
        raise ProtocolError(f"{where}: data is not a rectangular array") from None
    if arr.dtype == object:
        raise ProtocolError(f"{where}: data is not a rectangular array of numbers (or has integers too large "
                            f"for 64 bits)")
    count = math.prod(shape)
    if arr.size != count:
        raise ProtocolError(f"{where}: data has {arr.size} elements, shape {list(shape)} needs {count}")
    if arr.size == 0:
        return np.zeros(shape, dtype)
    ok = {"b": "b", "i": "iuf", "u": "iuf", "f": "iuf"}[dtype.kind]
    if arr.dtype.kind not in ok:
        what = {"b": "true/false", "i": "integers", "u": "integers", "f": "numbers"}[dtype.kind]
        raise ProtocolError(f"{where}: data must be {what} for {DATATYPES[dtype.name]}, got {_kind_name(arr)}")
    if dtype.kind not in "iu":
        return arr.astype(dtype).reshape(shape)
    # Integers straight from the JSON values: a mix of small and above-int64 ones reads as float64 in `arr`,
    # which would round them.
    try:
        out = np.array(data, dtype=dtype)
    except OverflowError:
        raise ProtocolError(f"{where}: data has values out of range for {DATATYPES[dtype.name]}") from None
    if arr.dtype.kind == "f":
        if not np.array_equal(out.astype(np.float64), arr):
            raise ProtocolError(f"{where}: data must be integers for {DATATYPES[dtype.name]}, got non-integer "
                                f"numbers")
    elif not np.array_equal(out, arr):  # numpy before 2.0 wraps out-of-range values instead of raising
        raise ProtocolError(f"{where}: data has values out of range for {DATATYPES[dtype.name]}")
    return out.reshape(shape)


def _kind_name(arr: np.ndarray) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "non-integer numbers",
            "U": "strings", "S": "strings"}.get(arr.dtype.kind, str(arr.dtype))


def _from_binary(raw: memoryview, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise ProtocolError(f"{where}: binary_data_size is {len(raw)} bytes, but shape {list(shape)} of "
                            f"{DATATYPES[dtype.name]} needs {need}")
    arr = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    if dtype.kind == "b" and arr.size and arr.view(np.uint8).max() > 1:
        raise ProtocolError(f"{where}: BOOL bytes must be 0 or 1")
    # Binary sections sit at arbitrary offsets; kernels may want aligned, native-order, writable arrays.
    arr = np.require(arr.astype(dtype, copy=False), requirements=["A", "W", "C"])
    return arr.reshape(shape)


def decode_infer_request(body: bytes | bytearray | memoryview, header_length: int | None,
                         inputs: Sequence[Tensor], outputs: Sequence[Tensor]) -> InferRequest:
    """Parse an infer request body for a model with these inputs and outputs.

    `header_length` is the Inference-Header-Content-Length header's value (None when absent: the body is all
    JSON). Input datatypes must be the model's; shapes are checked by the session."""
    body = memoryview(body)
    header_given = header_length is not None
    if header_length is None:
        header_length = len(body)
    elif not 0 <= header_length <= len(body):
        raise ProtocolError(f"{HEADER_LENGTH} is {header_length}, but the body has {len(body)} bytes")
    try:
        req = json.loads(bytes(body[:header_length]))
    except UnicodeDecodeError as e:
        raise ProtocolError(f"request JSON is not UTF-8: {e}") from None
    except ValueError as e:
        # JSON followed by bytes: binary tensors sent without saying where the JSON ends
        hint = f" (a binary request needs the {HEADER_LENGTH} header)" if str(e).startswith("Extra data") else ""
        raise ProtocolError(f"malformed request JSON: {e}{hint}") from None
    if not isinstance(req, dict):
        raise ProtocolError(f"request must be a JSON object, got {_json_type(req)}")
    request_id = _field(req, "id", str, "request", required=False)
    parameters = _field(req, "parameters", dict, "request", required=False) or {}
    tensors = _field(req, "inputs", list, "request")
    binary = body[header_length:]

    specs = {t.name: t for t in inputs}
    feeds: dict[str, np.ndarray] = {}
    offset = 0
    for k, t in enumerate(tensors):
        name, where, params = _entry(t, k, "input", inputs, feeds, "given")
        shape = _shape(t, where)
        datatype = _field(t, "datatype", str, where)
        _check_datatype(datatype, specs[name], where)
        dtype = np.dtype(specs[name].dtype)
        size = _field(params, "binary_data_size", int, f"{where} parameters", required=False)
        if size is not None:
            if "data" in t:
                raise ProtocolError(f"{where} has both data and binary_data_size")
            if size > 0 and not header_given:
                raise ProtocolError(f"{where} has binary_data_size {size}, but the request has no "
                                    f"{HEADER_LENGTH} header to say where the JSON ends")
            if size < 0 or offset + size > len(binary):
                raise ProtocolError(f"{where}: binary_data_size {size} runs past the end of the binary data "
                                    f"({len(binary) - offset} bytes left after the JSON header of "
                                    f"{header_length} bytes)")
            feeds[name] = _from_binary(binary[offset:offset + size], shape, dtype, where)
            offset += size
        elif "data" in t:
            feeds[name] = _from_json_data(t["data"], shape, dtype, where)
        else:
            raise ProtocolError(f"{where} has neither data nor parameters.binary_data_size")
    if offset != len(binary):
        raise ProtocolError(f"the body has {len(binary)} bytes after the JSON header, but the inputs' "
                            f"binary_data_size add up to {offset}")
    missing = [s.name for s in inputs if s.name not in feeds]
    if missing:
        raise ProtocolError(f"missing input(s) {missing}; the model's inputs are: "
                            + ", ".join(_describe(s) for s in inputs))
    return InferRequest(feeds, _requested_outputs(req, parameters, outputs), request_id, parameters)


def _entry(item, k: int, kind: str, known: Sequence[Tensor], seen, verb: str) -> tuple[str, str, dict]:
    """One inputs[k] / outputs[k] object: its name (one of the model's, not repeated), how errors name it, and
    its parameters (shared memory refused: tensors travel in the request)."""
    if not isinstance(item, dict):
        raise ProtocolError(f"{kind}s[{k}] must be an object, got {_json_type(item)}")
    name = _field(item, "name", str, f"{kind}s[{k}]")
    where = f"{kind} {name!r}"
    if name not in {t.name for t in known}:
        raise ProtocolError(f"unknown {kind} {name!r}; the model's {kind}s are: "
                            + ", ".join(_describe(t) for t in known))
    if name in seen:
        raise ProtocolError(f"{where} is {verb} twice")
    params = _field(item, "parameters", dict, where, required=False) or {}
    if "shared_memory_region" in params:
        raise ProtocolError(f"{where}: the shared memory extension is not supported")
    return name, where, params


def _requested_outputs(req: dict, parameters: dict, outputs: Sequence[Tensor]) -> list[tuple[str, bool]]:
    default = _field(parameters, "binary_data_output", bool, "request parameters", required=False) or False
    requested = _field(req, "outputs", list, "request", required=False)
    if not requested:
        return [(t.name, default) for t in outputs]
    chosen: list[tuple[str, bool]] = []
    for k, o in enumerate(requested):
        name, where, params = _entry(o, k, "output", outputs, [n for n, _ in chosen], "requested")
        if params.get("classification"):
            raise ProtocolError(f"{where}: the classification extension is not supported")
        as_binary = _field(params, "binary_data", bool, f"{where} parameters", required=False)
        chosen.append((name, default if as_binary is None else as_binary))
    return chosen


# -- responses ---------------------------------------------------------------------------------------------
def _to_binary(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


def _tensor_entry(name: str, arr, as_binary: bool, blobs: list[bytes]) -> dict[str, Any]:
    """One tensor of a request or response body: its data inline as JSON, or appended to `blobs` (the binary
    extension) with its size in the entry's parameters."""
    arr = np.asarray(arr)
    entry: dict[str, Any] = {"name": name, "datatype": datatype_of(arr.dtype.name), "shape": list(arr.shape)}
    if as_binary:
        blob = _to_binary(arr)
        entry["parameters"] = {"binary_data_size": len(blob)}
        blobs.append(blob)
    else:
        # NaN and infinities go out as NaN/Infinity: not strict JSON, but what tritonclient's parser takes.
        entry["data"] = arr.ravel().tolist()
    return entry


def encode_infer_response(model_name: str, model_version: str, results: dict[str, np.ndarray],
                          outputs: Sequence[tuple[str, bool]], request_id: str | None = None
                          ) -> tuple[bytes, int | None]:
    """The response body for `outputs` (name, as binary) of `results`, and the Inference-Header-Content-Length
    to send with it (None when the body is all JSON)."""
    entries: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, as_binary in outputs:
        entries.append(_tensor_entry(name, results[name], as_binary, blobs))
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = entries
    header = json.dumps(response, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def encode_infer_request(inputs: dict[str, np.ndarray], *, binary: bool = True,
                         outputs: Sequence[tuple[str, bool]] | None = None, request_id: str | None = None,
                         binary_data_output: bool | None = None) -> tuple[bytes, int | None]:
    """A request body for `inputs` (the client side, for tests and tools without tritonclient) and its
    Inference-Header-Content-Length (None when all JSON)."""
    entries, blobs = [], []
    for name, arr in inputs.items():
        entries.append(_tensor_entry(name, arr, binary, blobs))
    req: dict[str, Any] = {}
    if request_id is not None:
        req["id"] = request_id
    if binary_data_output is not None:
        req["parameters"] = {"binary_data_output": binary_data_output}
    req["inputs"] = entries
    if outputs is not None:
        req["outputs"] = [{"name": n, "parameters": {"binary_data": b}} for n, b in outputs]
    header = json.dumps(req).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def decode_infer_response(body: bytes, header_length: int | None) -> dict[str, np.ndarray]:
    """Output arrays of a response body (the client side of encode_infer_response)."""
    header_length = len(body) if header_length is None else header_length
    resp = json.loads(body[:header_length])
    binary = memoryview(body)[header_length:]
    out, offset = {}, 0
    for o in resp["outputs"]:
        dtype = np.dtype(NUMPY_OF[o["datatype"]])
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is None:
            arr = np.asarray(o["data"], dtype=dtype)
        else:
            arr = np.frombuffer(binary[offset:offset + size], dtype=dtype.newbyteorder("<")).astype(dtype)
            offset += size
        out[o["name"]] = arr.reshape(o["shape"])
    return out
