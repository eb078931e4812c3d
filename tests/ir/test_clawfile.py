"""The .claw file: round trips, zero-copy alignment, and a clear ClawFileError for every way a file can be bad.

The helpers below re-implement the byte layout from clawfile's module docstring (not from its code), so the
tests also check that the documented layout is the one written.
"""
from __future__ import annotations

import errno
import json
import mmap
import os
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from clawdbot.errors import ClawFileError
from clawdbot.ir import clawfile
from clawdbot.ir.clawfile import load_graph, read_header, save_graph
from clawdbot.ir.dtypes import DTYPES, FLOAT_TYPES
from clawdbot.ir.graph import Graph, Node, QuantParams, TensorType

FIXED = struct.Struct("<8sHHIIIQ")
ENTRY = struct.Struct("<IIQQII")
NAMES = {1: "metadata", 2: "constants index", 3: "constants data"}


# ------------------------------------------------------------------------------ an independent reader/writer

def split(data: bytes) -> tuple[tuple[int, int], int, list[tuple[int, int, bytes]]]:
    """(version, header flags, [(kind, section flags, payload)]) in table order."""
    magic, major, minor, flags, count, _, _ = FIXED.unpack_from(data, 0)
    sections = []
    for i in range(count):
        kind, sflags, off, length, _, _ = ENTRY.unpack_from(data, 32 + 32 * i)
        sections.append((kind, sflags, data[off:off + length]))
    return (major, minor), flags, sections


def build(sections, version=(1, 0), flags=0) -> bytes:
    """Lay sections out the way the docstring says the writer does: each at the next multiple of 64."""
    header_len = 32 + 32 * len(sections) + 4
    body, entries, pos = b"", [], -(-header_len // 64) * 64
    for kind, sflags, payload in sections:
        pos = -(-pos // 64) * 64
        entries.append(ENTRY.pack(kind, sflags, pos, len(payload), zlib.crc32(payload), 0))
        body += bytes(pos - header_len - len(body)) + payload
        pos += len(payload)
    head = FIXED.pack(b"\x89CLAW\r\n\n", *version, flags, len(sections), 0, header_len + len(body))
    head += b"".join(entries)
    return head + struct.pack("<I", zlib.crc32(head)) + body


def reseal(blob: bytes, **replace: bytes) -> bytes:
    """Replace sections' payloads by name (metadata=, index=, data=) and fix every checksum."""
    version, flags, sections = split(blob)
    by_name = {"metadata": 1, "index": 2, "data": 3}
    new = {by_name[k]: v for k, v in replace.items()}
    return build([(k, f, new.get(k, p)) for k, f, p in sections], version, flags)


def patch_header(data: bytes, **fields) -> bytes:
    """Rewrite fixed-header fields (major, minor, flags) and re-checksum the header."""
    magic, major, minor, flags, count, res, length = FIXED.unpack_from(data, 0)
    major, minor, flags = fields.get("major", major), fields.get("minor", minor), fields.get("flags", flags)
    header_len = 32 + 32 * count
    head = FIXED.pack(magic, major, minor, flags, count, res, length) + data[32:header_len]
    return head + struct.pack("<I", zlib.crc32(head)) + data[header_len + 4:]


def patch_entry(data: bytes, index: int, **fields) -> bytes:
    """Rewrite one section table entry (offset, length) and re-checksum the header."""
    _, _, _, _, count, _, _ = FIXED.unpack_from(data, 0)
    kind, sflags, off, length, crc, res = ENTRY.unpack_from(data, 32 + 32 * index)
    entry = ENTRY.pack(kind, sflags, fields.get("offset", off), fields.get("length", length), crc, res)
    head = data[:32 + 32 * index] + entry + data[64 + 32 * index:32 + 32 * count]
    return head + struct.pack("<I", zlib.crc32(head)) + data[len(head) + 4:]


# ------------------------------------------------------------------------------------------------ graphs

def sample_array(dtype: str, shape, rng) -> np.ndarray:
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype in FLOAT_TYPES:
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def make_graph(extra: dict[str, np.ndarray] | None = None) -> Graph:
    rng = np.random.default_rng(0)
    constants: dict[str, np.ndarray] = {}
    for dt in DTYPES:
        a = sample_array(dt, (3, 5), rng)
        constants[f"c_{dt}"] = a
        constants[f"scalar_{dt}"] = np.array(a[1, 2])                  # 0-d
        constants[f"empty_{dt}"] = np.zeros((0, 4), dtype=dt)          # no elements
    constants["transposed"] = np.arange(24, dtype=np.float32).reshape(4, 6).T   # not C-contiguous
    constants["strided"] = np.arange(100, dtype=np.int16)[::3]
    constants["big_endian"] = np.arange(-5, 5, dtype=">i4")
    constants["specials"] = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4e38], dtype=np.float32)
    constants["odd_size"] = np.arange(7, dtype=np.uint8)                # next constant must still be aligned
    constants.update(extra or {})
    types = {n: TensorType.of(a) for n, a in constants.items()}
    types.update({
        "x": TensorType("float32", ("batch", 3, None)),
        "h": TensorType("int8", (4, 4), QuantParams((0.5, 0.25), (0, -3), axis=0)),
        "y": TensorType("float32", None),
    })
    nodes = [
        Node("Conv", ["x", "c_float32", ""], ["h"], {"strides": [1, 2], "pads": [0, 0, 1, 1], "alpha": 0.1,
                                                     "auto_pad": "NOTSET", "flag": True, "none": None,
                                                     "nested": {"a": [[1, 2], [3]], "b": {"c": -7}}},
             "conv/1"),
        Node("Whatever.Op", ["h", "transposed"], ["y"], {"label": "ünïcødé ✓ \"quoted\"\n", "big": 2 ** 62},
             ""),
    ]
    return Graph(name="sample", inputs=["x"], outputs=["y"], nodes=nodes, constants=constants, types=types,
                 metadata={"producer": "tests", "opsets": {"": 17, "com.microsoft": 1}, "ratio": 0.75})


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert (b.name, b.inputs, b.outputs) == (a.name, a.inputs, a.outputs)
    assert b.nodes == a.nodes
    assert b.types == a.types
    assert b.metadata == a.metadata
    assert sorted(b.constants) == sorted(a.constants)
    for name, orig in a.constants.items():
        got = b.constants[name]
        assert got.dtype.name == orig.dtype.name, name
        assert got.shape == orig.shape, name
        # Bit-exact, NaN payloads and -0.0 included.
        assert got.tobytes() == np.asarray(orig, dtype=orig.dtype.newbyteorder("<")).tobytes(), name
        np.testing.assert_array_equal(got, orig)


def maps_file(arr: np.ndarray) -> bool:
    """True when following .base from `arr` ends at the file's mmap (via the memoryview frombuffer takes)."""
    base = arr
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


@pytest.fixture
def saved(tmp_path) -> tuple[Path, Graph, bytes]:
    g = make_graph()
    p = tmp_path / "model.claw"
    save_graph(p, g)
    return p, g, p.read_bytes()


def write(tmp_path, data: bytes, name="bad.claw") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ---------------------------------------------------------------------------------------------- round trip

def test_round_trip_every_dtype_and_shape(saved):
    p, g, _ = saved
    assert_same_graph(g, load_graph(p))
    assert_same_graph(g, load_graph(str(p), verify=False))


def test_constants_are_aligned_read_only_zero_copy_views(saved):
    p, _, _ = saved
    loaded = load_graph(p)
    for name, arr in loaded.constants.items():
        assert arr.ctypes.data % 64 == 0, name
        assert not arr.flags.owndata, name
        assert not arr.flags.writeable, name
        assert maps_file(arr), name
        if arr.size:
            with pytest.raises(ValueError):
                arr.flat[0] = 0


def test_big_constant_round_trips_aligned(tmp_path):
    big = np.random.default_rng(1).standard_normal((1024, 4096)).astype(np.float32)   # 16 MiB
    g = make_graph({"big": big, "big_t": big[:256, :512].T})
    save_graph(tmp_path / "big.claw", g)
    loaded = load_graph(tmp_path / "big.claw")
    assert_same_graph(g, loaded)
    assert loaded.constants["big"].ctypes.data % 64 == 0 and maps_file(loaded.constants["big"])


def test_documented_layout_matches_the_file(saved):
    p, g, data = saved
    # The docstring's layout, rebuilt independently, gives the very same bytes.
    assert build(split(data)[2]) == data
    h = read_header(p)
    assert h.version == (1, 0) and str(h.version) == "1.0" and h.flags == 0 and h.file_length == len(data)
    assert [s.name for s in h.sections] == ["metadata", "constants index", "constants data"]
    assert all(s.offset % 64 == 0 and s.required for s in h.sections)
    data_s = h.section(clawfile.KIND_CONSTANTS_DATA)
    index = json.loads(split(data)[2][1][2])
    assert [e["name"] for e in index] == sorted(g.constants)
    for e in index:
        start = data_s.offset + e["offset"]
        assert start % 64 == 0
        orig = g.constants[e["name"]]
        # Little-endian in the file whatever the source byte order ("big_endian" is '>i4').
        assert data[start:start + e["nbytes"]] == np.asarray(orig, orig.dtype.newbyteorder("<")).tobytes()
    assert json.loads(split(data)[2][0][2]) == json.loads(json.dumps(g.to_dict()))


def test_saving_is_deterministic(tmp_path, saved):
    _, g, data = saved
    save_graph(tmp_path / "again.claw", g)
    assert (tmp_path / "again.claw").read_bytes() == data
    # Dict insertion order does not matter either, and a loaded graph saves back to the same bytes.
    shuffled = make_graph()
    shuffled.constants = dict(reversed(list(shuffled.constants.items())))
    shuffled.types = dict(reversed(list(shuffled.types.items())))
    save_graph(tmp_path / "shuffled.claw", shuffled)
    assert (tmp_path / "shuffled.claw").read_bytes() == data
    save_graph(tmp_path / "resaved.claw", load_graph(tmp_path / "again.claw"))
    assert (tmp_path / "resaved.claw").read_bytes() == data


def test_graph_without_constants(tmp_path):
    g = Graph(name="empty", inputs=["x"], outputs=["x"], types={"x": TensorType("float32", (1,))})
    save_graph(tmp_path / "e.claw", g)
    assert_same_graph(g, load_graph(tmp_path / "e.claw"))


def test_numpy_scalars_in_attrs_are_saved_as_numbers(tmp_path):
    g = make_graph()
    g.nodes[0].attrs.update(f=np.float32(0.5), i=np.int64(3), b=np.bool_(True))
    save_graph(tmp_path / "s.claw", g)
    attrs = load_graph(tmp_path / "s.claw").nodes[0].attrs
    assert (attrs["f"], attrs["i"], attrs["b"]) == (0.5, 3, True)
    assert type(attrs["i"]) is int and type(attrs["b"]) is bool


def test_overwriting_a_loaded_file_keeps_the_old_views_valid(saved):
    p, g, data = saved
    loaded = load_graph(p)
    weights = loaded.constants["c_float32"]
    save_graph(p, loaded)                       # the graph's own constants are views of the file replaced
    assert p.read_bytes() == data
    loaded.constants["extra"] = np.ones(3, np.float32)
    loaded.types["extra"] = TensorType("float32", (3,))
    save_graph(p, loaded)
    np.testing.assert_array_equal(weights, g.constants["c_float32"])   # the old map is still intact
    assert "extra" in load_graph(p).constants


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_saved_file_gets_umask_permissions(saved):
    p, _, _ = saved
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask


# ------------------------------------------------------------------------------------- damaged files

def probe_offsets(p: Path, size: int) -> list[int]:
    """Every offset in the header and around each section boundary, and every 3rd elsewhere (keeps it fast)."""
    h = read_header(p)
    near = {o + d for s in h.sections for o in (s.offset, s.end) for d in range(-3, 4)}
    return sorted({i for i in range(size) if i < h.header_length + 8 or i in near or i % 3 == 0})


def test_truncated_at_many_offsets(tmp_path, saved):
    p, _, data = saved
    for cut in probe_offsets(p, len(data)):
        if cut == 0:
            continue
        q = write(tmp_path, data[:cut])
        for verify in (True, False):
            with pytest.raises(ClawFileError, match="truncated") as e:
                load_graph(q, verify=verify)
            assert str(q) in str(e.value)
        with pytest.raises(ClawFileError, match="truncated"):
            read_header(q)


def test_truncated_big_file_names_the_cut_section(tmp_path):
    g = make_graph({"big": np.zeros((512, 1024), np.float32)})
    save_graph(tmp_path / "big.claw", g)
    data = (tmp_path / "big.claw").read_bytes()
    h = read_header(tmp_path / "big.claw")
    meta, _, consts = h.sections
    for cut, section in ((meta.offset + 10, "metadata"), (consts.offset + 1000, "constants data"),
                         (len(data) - 1, "constants data")):
        with pytest.raises(ClawFileError, match=f"truncated.*the {section} section"):
            load_graph(write(tmp_path, data[:cut]))


def region(i: int, header) -> str:
    """The words the error for a byte changed at offset i must contain."""
    if i < 8:
        return "not a .claw file"
    if i < 10:
        return "unsupported .claw format version"
    if i < header.header_length:
        return "header"
    for s in header.sections:
        if s.offset <= i < s.end:
            return f"checksum mismatch in the {s.name} section"
    return "padding"


def test_a_changed_byte_is_caught_and_located(tmp_path, saved):
    p, _, data = saved
    header = read_header(p)
    seen = set()
    for i in probe_offsets(p, len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        expected = region(i, header)
        seen.add(expected)
        with pytest.raises(ClawFileError, match=re.escape(expected)) as e:
            load_graph(write(tmp_path, bytes(bad)))
        assert str(tmp_path) in str(e.value)
    assert {f"checksum mismatch in the {n} section" for n in NAMES.values()} | {"padding", "header"} <= seen


def test_verify_false_skips_the_checksums(saved, tmp_path):
    p, _, data = saved
    start = read_header(p).section(clawfile.KIND_CONSTANTS_DATA).offset
    bad = bytearray(data)
    bad[start] ^= 0xFF                  # first byte of the first constant ("big_endian")
    q = write(tmp_path, bytes(bad))
    with pytest.raises(ClawFileError, match="constants data"):
        load_graph(q)
    assert load_graph(q, verify=False).constants["big_endian"][0] != -5


def test_wrong_major_version(tmp_path, saved):
    _, _, data = saved
    for major in (2, 0):
        with pytest.raises(ClawFileError, match=rf"version {major}\.3.*reads version 1\.x \(up to 1\.0\)"):
            load_graph(write(tmp_path, patch_header(data, major=major, minor=3)))
    with pytest.raises(ClawFileError, match="upgrade clawdbot"):
        read_header(write(tmp_path, patch_header(data, major=2)))


def test_newer_minor_version_and_optional_extensions_are_read(tmp_path, saved):
    p, g, data = saved
    assert_same_graph(g, load_graph(write(tmp_path, patch_header(data, minor=7))))
    assert_same_graph(g, load_graph(write(tmp_path, patch_header(data, flags=0x1))))    # optional flag
    version, flags, sections = split(data)
    future = (9, 0, b"a future extension")                                             # optional section
    assert_same_graph(g, load_graph(write(tmp_path, build(sections + [future]))))
    assert_same_graph(g, load_graph(write(tmp_path, build([future] + sections))))
    with pytest.raises(ClawFileError, match="needs a newer clawdbot.*kind 9"):
        load_graph(write(tmp_path, build(sections + [(9, 1, b"required")])))
    with pytest.raises(ClawFileError, match="needs a newer clawdbot.*header flags"):
        load_graph(write(tmp_path, patch_header(data, flags=1 << 16)))


def test_not_a_claw_file(tmp_path):
    with pytest.raises(ClawFileError, match="not a .claw file: bad magic bytes 68 65 6c"):
        load_graph(write(tmp_path, b"hello world, this is text\n" * 4))
    with pytest.raises(ClawFileError, match="not a .claw file: bad magic bytes 89 50 4e 47"):
        load_graph(write(tmp_path, b"\x89PNG\r\n\x1a\n" + bytes(100)))
    with pytest.raises(ClawFileError, match="TensorFlow Lite"):
        load_graph(write(tmp_path, b"\x1c\x00\x00\x00TFL3" + bytes(100)))
    with pytest.raises(ClawFileError, match="zip archive"):
        read_header(write(tmp_path, b"PK\x03\x04" + bytes(100)))
    with pytest.raises(ClawFileError, match="not a .claw file"):
        load_graph(write(tmp_path, b"\x00"))


def test_onnx_file_passed_by_mistake(tmp_path):
    # ModelProto as onnx.save writes it: ir_version=8, producer_name="pytorch", ...
    fake = b"\x08\x08\x12\x07pytorch\x1a\x052.1.0:\x9a\x01\n" + bytes(200)
    for name in ("model.claw", "model.bin"):
        with pytest.raises(ClawFileError, match="looks like an ONNX model.*clawdbot.load") as e:
            load_graph(write(tmp_path, fake, name))
        assert name in str(e.value)
    with pytest.raises(ClawFileError, match="ONNX"):
        load_graph(write(tmp_path, b"whatever bytes", "model.onnx"))


def test_real_onnx_file_is_recognised(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = tmp_path / "relu.claw"                       # the wrong extension, so only the bytes can tell
    onnx.save(helper.make_model(graph, producer_name="test"), str(p))
    with pytest.raises(ClawFileError, match="looks like an ONNX model"):
        load_graph(p)


def test_text_mode_transfer_damage(tmp_path, saved):
    _, _, data = saved
    damaged = {
        "CRLF->LF": data.replace(b"\r\n", b"\n"),
        "LF->CRLF": re.sub(rb"(?<!\r)\n", b"\r\n", data),
        "LF->CRLF naive": data.replace(b"\n", b"\r\n"),
        "7-bit": bytes(b & 0x7F for b in data),
        "latin-1 as UTF-8": data.decode("latin-1").encode("utf-8"),
    }
    for what, bad in damaged.items():
        with pytest.raises(ClawFileError, match="damaged in transfer.*binary mode"):
            load_graph(write(tmp_path, bad))


def test_missing_empty_directory(tmp_path):
    for fn in (load_graph, read_header):
        with pytest.raises(ClawFileError, match="no such file"):
            fn(tmp_path / "missing.claw")
        with pytest.raises(ClawFileError, match="is a directory"):
            fn(tmp_path)
        with pytest.raises(ClawFileError, match=r"empty file \(0 bytes\)") as e:
            fn(write(tmp_path, b"", "empty.claw"))
        assert "empty.claw" in str(e.value)


def test_appended_bytes(tmp_path, saved):
    _, _, data = saved
    with pytest.raises(ClawFileError, match="3 unexpected bytes after the end"):
        load_graph(write(tmp_path, data + b"abc"))


# ----------------------------------------------------------------------- well-checksummed, bad contents

def index_of(data: bytes) -> list[dict]:
    return json.loads(split(data)[2][1][2])


def with_index(data: bytes, index) -> bytes:
    return reseal(data, index=json.dumps(index).encode())


@pytest.mark.parametrize("payload, words", [
    (b'{"name": "g", ', r"malformed metadata section: invalid JSON"),
    (b'{"name": NaN}', r"malformed metadata section: NaN is not allowed"),
    (b'{"name": 1e999}', r"malformed metadata section: number 1e999 is out of range"),
    (b'\xff\xfe{}', r"malformed metadata section: not UTF-8"),
    (b'[1, 2]', r"expected a JSON object, found list"),
    (b'[' * 100000 + b']' * 100000, r"malformed metadata section"),
], ids=["cut", "nan", "overflow", "not-utf8", "list", "deep"])
def test_malformed_metadata(tmp_path, saved, payload, words):
    _, _, data = saved
    with pytest.raises(ClawFileError, match=words):
        load_graph(write(tmp_path, reseal(data, metadata=payload)))


def test_metadata_that_is_not_a_graph(tmp_path, saved):
    _, _, data = saved
    meta = json.loads(split(data)[2][0][2])
    without_nodes = json.dumps({k: v for k, v in meta.items() if k != "nodes"}).encode()
    with pytest.raises(ClawFileError, match=r"metadata section: not a claw_ir graph \(missing field 'nodes'\)"):
        load_graph(write(tmp_path, reseal(data, metadata=without_nodes)))
    meta["types"] = {"x": {"dtype": "float32", "shape": 5}}
    with pytest.raises(ClawFileError, match=r"malformed metadata section: not a claw_ir graph"):
        load_graph(write(tmp_path, reseal(data, metadata=json.dumps(meta).encode())))


def test_metadata_constant_list_must_match_the_index(tmp_path, saved):
    _, _, data = saved
    index = index_of(data)
    with pytest.raises(ClawFileError, match="the metadata lists constants"):
        load_graph(write(tmp_path, with_index(data, index[1:])))


def test_malformed_constants_index(tmp_path, saved):
    _, _, data = saved
    data_len = len(split(data)[2][2][2])

    def bad(change, words):
        index = index_of(data)
        change(index)
        with pytest.raises(ClawFileError, match=words) as e:
            load_graph(write(tmp_path, with_index(data, index)))
        assert str(tmp_path) in str(e.value)

    bad(lambda ix: ix[0].update(dtype="complex64"), r"constant 'big_endian' has unknown dtype 'complex64'")
    bad(lambda ix: ix[0].update(dtype="bfloat16"), r"unknown dtype 'bfloat16'")
    bad(lambda ix: ix[-1].update(offset=-(-data_len // 64) * 64), r"its bytes fall outside the data section")
    bad(lambda ix: ix[-1].update(offset=2 ** 40), r"fall outside the data section")
    bad(lambda ix: ix[0].update(offset=ix[0]["offset"] + 4), r"not a multiple of 64")
    bad(lambda ix: ix[0].update(nbytes=ix[0]["nbytes"] + 1), r"does not match")
    bad(lambda ix: ix[0].update(shape=[-1]), r"invalid shape")
    bad(lambda ix: ix[0].update(shape="10"), r"invalid shape")
    bad(lambda ix: ix[0].update(offset="0"), r"invalid offset")
    bad(lambda ix: ix[0].pop("nbytes"), r"lacks nbytes")
    bad(lambda ix: ix.append(dict(ix[0])), r"listed twice")
    bad(lambda ix: ix.append(7), r"entry \d+ is a int")
    with pytest.raises(ClawFileError, match="malformed constants index: expected a JSON list"):
        load_graph(write(tmp_path, reseal(data, index=b'{"a": 1}')))


def test_bool_constant_with_bytes_other_than_0_and_1(tmp_path, saved):
    _, _, data = saved
    entry = next(e for e in index_of(data) if e["name"] == "c_bool")
    payload = bytearray(split(data)[2][2][2])
    payload[entry["offset"]] = 7
    with pytest.raises(ClawFileError, match="bool constant 'c_bool'"):
        load_graph(write(tmp_path, reseal(data, data=bytes(payload))))


def test_invalid_section_table(tmp_path, saved):
    _, _, data = saved
    _, _, sections = split(data)
    with pytest.raises(ClawFileError, match="no constants data section"):
        load_graph(write(tmp_path, build(sections[:2])))
    with pytest.raises(ClawFileError, match="more than one metadata section"):
        load_graph(write(tmp_path, build(sections + sections[:1])))
    with pytest.raises(ClawFileError, match="kind 0"):
        load_graph(write(tmp_path, build(sections + [(0, 0, b"")])))
    meta_off = ENTRY.unpack_from(data, 32)[2]
    with pytest.raises(ClawFileError, match="overlap"):
        load_graph(write(tmp_path, patch_entry(data, 1, offset=meta_off)))
    with pytest.raises(ClawFileError, match="lies outside"):
        load_graph(write(tmp_path, patch_entry(data, 0, offset=8)))
    with pytest.raises(ClawFileError, match="lies outside"):
        load_graph(write(tmp_path, patch_entry(data, 2, length=len(data))))
    _, _, off, length, _, _ = ENTRY.unpack_from(data, 32 + 64)
    with pytest.raises(ClawFileError, match="not a multiple of 64"):
        load_graph(write(tmp_path, patch_entry(data, 2, offset=off + 8, length=length - 8)))


# ------------------------------------------------------------------------------------------ saving

def assert_untouched(directory: Path, expected: dict[str, bytes]) -> None:
    assert sorted(os.listdir(directory)) == sorted(expected), "a temporary file was left behind"
    for name, content in expected.items():
        assert (directory / name).read_bytes() == content


def test_failed_write_leaves_the_previous_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "model.claw"
    save_graph(p, make_graph())
    before = p.read_bytes()
    g2 = make_graph({"big": np.ones((256, 1024), np.float32)})
    real_write, calls = clawfile._write, []

    def full_disk(f, data):
        calls.append(len(data))
        if len(calls) > 8:              # after the header and the JSON sections, mid-constants
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(f, data)

    monkeypatch.setattr(clawfile, "_write", full_disk)
    with pytest.raises(ClawFileError, match=r"model\.claw: cannot save: No space left on device"):
        save_graph(p, g2)
    assert_untouched(tmp_path, {"model.claw": before})

    def bug(f, data):
        raise RuntimeError("boom")      # not an I/O error: propagates as itself, still cleaned up

    monkeypatch.setattr(clawfile, "_write", bug)
    with pytest.raises(RuntimeError, match="boom"):
        save_graph(p, g2)
    assert_untouched(tmp_path, {"model.claw": before})
    monkeypatch.setattr(clawfile, "_write", real_write)

    for name in ("fsync", "replace"):
        def fail(*args, _name=name):
            raise OSError(errno.EIO, f"Input/output error in {_name}")
        with monkeypatch.context() as m:
            m.setattr(os, name, fail)
            with pytest.raises(ClawFileError, match=f"cannot save: Input/output error in {name}"):
                save_graph(p, g2)
        assert_untouched(tmp_path, {"model.claw": before})

    save_graph(p, g2)                   # and a good save afterwards replaces it
    assert_same_graph(g2, load_graph(p))
    assert_untouched(tmp_path, {"model.claw": p.read_bytes()})


@pytest.mark.parametrize("change, words", [
    (lambda g: g.nodes[0].attrs.update(alpha=float("nan")), r"Conv node 'conv/1'.*attrs\.alpha is nan"),
    (lambda g: g.nodes[1].attrs.update(lst=[1.0, float("-inf")]), r"attrs\.lst\[1\] is -inf"),
    (lambda g: g.metadata.update(score=float("inf")), r"metadata\.score is inf"),
    (lambda g: g.types.update(q=TensorType("int8", (1,), QuantParams((float("nan"),), (0,)))),
     r"types\.q\.quant\.scale\[0\] is nan"),
    (lambda g: g.nodes[0].attrs.update(t=np.zeros(3)), r"attrs\.t is a numpy array.*constant"),
    (lambda g: g.nodes[0].attrs.update(k={1: 2}), r"non-string key 1"),
    (lambda g: g.nodes[0].attrs.update(o=object()), r"attrs\.o is of type object"),
    (lambda g: g.constants.update({3: np.zeros(1)}), r"constant name 3 is not a string"),
    (lambda g: g.constants.update(z=np.zeros(2, np.complex64)), r"constant 'z' has numpy dtype complex64"),
    (lambda g: g.constants.update(s=np.array(["a"])), r"constant 's' has numpy dtype <U1"),
])
def test_unsavable_graphs_are_refused_before_writing(tmp_path, change, words):
    p = tmp_path / "model.claw"
    save_graph(p, make_graph())
    before = p.read_bytes()
    g = make_graph()
    change(g)
    with pytest.raises(ClawFileError, match=words) as e:
        save_graph(p, g)
    assert str(p) in str(e.value)
    assert_untouched(tmp_path, {"model.claw": before})


def test_save_to_bad_places(tmp_path):
    with pytest.raises(ClawFileError, match="is a directory"):
        save_graph(tmp_path, make_graph())
    with pytest.raises(ClawFileError, match="does not exist"):
        save_graph(tmp_path / "no" / "such" / "dir.claw", make_graph())
