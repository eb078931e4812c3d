"""The .claw file: one self-contained, memory-mappable file holding a claw_ir graph and its constants.

Loading maps the file read-only and hands out the constants as zero-copy numpy views into the map, so a
model's weights cost no load time and no private memory: pages come from the OS page cache on first use
and are shared between processes running the same model.

Byte layout (format version 1.0)
================================

All integers are little-endian and unsigned. Offsets are absolute file offsets unless said otherwise.
``n`` is the section count.

Header::

    offset       size  field
    0            8     magic = 89 43 4C 41 57 0D 0A 0A  ("\\x89CLAW\\r\\n\\n")
    8            2     u16 format major version (1)
    10           2     u16 format minor version (0)
    12           4     u32 header flags (see below; 0 in 1.0)
    16           4     u32 n, the number of entries in the section table (at most 256)
    20           4     u32 reserved, written as 0
    24           8     u64 file length in bytes (the whole file; detects truncation and appended bytes)
    32           32*n  section table, one 32-byte entry per section (below)
    32+32*n      4     u32 CRC-32 of header bytes [0, 32+32*n)

Section table entry (32 bytes)::

    +0   4  u32 kind       1 = metadata, 2 = constants index, 3 = constants data, 4 = memory plan;
                           0 is invalid; other values are reserved for future kinds
    +4   4  u32 flags      bit 0 = required: a reader that does not know `kind` must refuse the file;
                           a reader skips unknown kinds without this bit. Other bits: 0, ignored.
    +8   8  u64 offset     file offset of the section's first byte
    +16  8  u64 length     section length in bytes (may be 0)
    +24  4  u32 crc32      CRC-32 of the section's bytes (zlib/PNG/Ethernet CRC, polynomial 0xEDB88320)
    +28  4  u32 reserved   written as 0

Header flags: bits 0-15 mark optional features (a reader ignores the ones it does not know), bits 16-31
required ones (a reader refuses a file with a required bit it does not know). Version 1.0 defines none.

Sections (this writer's order; readers go by the table, not by position):

* metadata (kind 1): UTF-8 JSON of ``Graph.to_dict()``: keys sorted, no insignificant whitespace, strict
  JSON (NaN and infinities are refused on save and on load).
* constants index (kind 2): UTF-8 JSON list, sorted by name, of
  ``{"name": str, "dtype": str, "shape": [int, ...], "offset": int, "nbytes": int}``;
  ``dtype`` is one of ``clawdbot.ir.dtypes.DTYPES``; ``offset`` is relative to the start of the
  constants data section and a multiple of 64; ``nbytes`` = prod(shape) * itemsize.
* constants data (kind 3): every constant's elements in C order, little-endian, bool as one byte (0 or 1).
* memory plan (kind 4, optional, not marked required; added in 1.0 files by writers that plan): UTF-8 JSON
  of ``clawdbot.plan.memory.MemoryPlan.to_dict()``, the arena layout made at conversion for one driver and
  one binding of the symbolic dims. Its checksum is checked on every load; a reader without it plans itself.

Every section starts at a file offset that is a multiple of 64, so every constant starts at a 64-byte aligned
file offset, and since mmap bases are page-aligned, at a 64-byte aligned address in memory (SIMD loads,
cache lines). The bytes between sections (and between constants, which lie inside the data section) are
zero. Sections must not overlap the header or each other and must end within the file length.

Versioning: the major version changes when a reader of the old major could misread a file; a reader refuses
any other major. Minor versions only add what an older reader may ignore (optional sections and flags), so a
reader accepts every minor of its major; anything it must not ignore is marked required instead.

The magic follows PNG's: the non-ASCII first byte catches 7-bit transfers, CR LF catches CRLF -> LF
conversion and the lone LF catches LF -> CRLF conversion. (PNG also has 0x1A, which only stops DOS
`type` from printing the rest; an 8-byte magic has no room for it next to "CLAW".)

Saves are atomic (temp file in the same directory, fsync, rename), so a file is never rewritten in place —
which also keeps earlier loads' maps of the old file valid.
"""
from __future__ import annotations

import json
import math
import mmap
import os
import secrets
import stat
import struct
import zlib
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import ClawFileError
from .dtypes import DTYPES
from .graph import Graph

MAGIC = b"\x89CLAW\r\n\n"
FORMAT_VERSION = (1, 0)
ALIGNMENT = 64

KIND_METADATA = 1
KIND_CONSTANTS_INDEX = 2
KIND_CONSTANTS_DATA = 3
KIND_MEMORY_PLAN = 4
SECTION_NAMES = {
    KIND_METADATA: "metadata",
    KIND_CONSTANTS_INDEX: "constants index",
    KIND_CONSTANTS_DATA: "constants data",
    KIND_MEMORY_PLAN: "memory plan",
}
REQUIRED_KINDS = (KIND_METADATA, KIND_CONSTANTS_INDEX, KIND_CONSTANTS_DATA)
SECTION_REQUIRED = 0x1
HEADER_REQUIRED_FLAGS = 0xFFFF0000  # bits a reader must understand; 1.0 defines none
KNOWN_HEADER_FLAGS = 0

_FIXED = struct.Struct("<8sHHIIIQ")   # magic, major, minor, flags, section count, reserved, file length
_ENTRY = struct.Struct("<IIQQII")     # kind, flags, offset, length, crc32, reserved
_CRC = struct.Struct("<I")
assert _FIXED.size == 32 and _ENTRY.size == 32
# A real file has a handful of sections; the cap stops a corrupted count from making us read megabytes.
MAX_SECTIONS = 256
_MAX_HEADER = _FIXED.size + MAX_SECTIONS * _ENTRY.size + _CRC.size

__all__ = ["MAGIC", "FORMAT_VERSION", "ALIGNMENT", "SECTION_NAMES", "KIND_METADATA", "KIND_CONSTANTS_INDEX",
           "KIND_CONSTANTS_DATA", "KIND_MEMORY_PLAN", "FormatVersion", "SectionInfo", "ClawHeader", "save_graph",
           "load_graph", "load_model",
           "read_header"]


class FormatVersion(NamedTuple):
    """(major, minor); prints as "1.0"."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class SectionInfo:
    kind: int
    offset: int
    length: int
    crc32: int
    flags: int = 0

    @property
    def name(self) -> str:
        return SECTION_NAMES.get(self.kind, f"unknown (kind {self.kind})")

    @property
    def required(self) -> bool:
        return bool(self.flags & SECTION_REQUIRED)

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True)
class ClawHeader:
    """What `claw info` shows without reading the sections themselves."""

    version: FormatVersion
    flags: int
    file_length: int
    header_length: int
    sections: tuple[SectionInfo, ...]

    def section(self, kind: int) -> SectionInfo | None:
        return next((s for s in self.sections if s.kind == kind), None)


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


# --------------------------------------------------------------------------------------------------- writing

def _write(f, data) -> None:
    """Every byte of a save goes through here (one seam for tests to simulate a full disk)."""
    f.write(data)


def _jsonable(value: Any, where: str, path: str) -> Any:
    """A strict-JSON copy of `value`; numpy scalars become Python numbers. Raises naming the offending spot."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ClawFileError(f"{path}: cannot save: {where} is {value!r}; .claw metadata is strict JSON, "
                                f"which has no NaN or infinity")
        return float(value)
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return _jsonable(value.item(), where, path)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]", path) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ClawFileError(f"{path}: cannot save: {where} has a non-string key {k!r}; JSON object keys "
                                    f"are strings")
            out[k] = _jsonable(v, f"{where}.{k}", path)
        return out
    if isinstance(value, np.ndarray):
        raise ClawFileError(f"{path}: cannot save: {where} is a numpy array; tensors do not belong in "
                            f"attributes or metadata — make it a graph constant")
    raise ClawFileError(f"{path}: cannot save: {where} is of type {type(value).__name__}, which JSON cannot "
                        f"hold")


def _dumps(obj: Any) -> bytes:
    # Sorted keys and fixed separators: the same graph always gives the same bytes.
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _encode_metadata(graph: Graph, path: str) -> bytes:
    d = graph.to_dict()
    clean = {k: _jsonable(v, k, path) for k, v in d.items() if k != "nodes"}
    clean["nodes"] = [_jsonable(nd, str(node), path) for nd, node in zip(d["nodes"], graph.nodes)]
    return _dumps(clean)


def _prepare_constants(graph: Graph, path: str) -> list[tuple[str, str, np.ndarray]]:
    out = []
    for name in sorted(graph.constants):
        arr = np.asarray(graph.constants[name])
        dtype = arr.dtype.name
        if dtype not in DTYPES or arr.dtype.kind not in "biuf":
            raise ClawFileError(f"{path}: cannot save: constant {name!r} has numpy dtype {arr.dtype}, which "
                                f"claw_ir cannot hold; supported: {', '.join(DTYPES)}")
        # C order and little-endian whatever the source array was (transposed views, '>f4' from a file, ...).
        # (np.asarray with order="C", not ascontiguousarray, which turns 0-d arrays into 1-d ones.)
        arr = np.asarray(arr, dtype=arr.dtype.newbyteorder("<"), order="C")
        out.append((name, dtype, arr))
    return out


def save_graph(path: str | os.PathLike, graph: Graph, plan: dict | None = None) -> None:
    """Write `graph` to `path` atomically: a failure at any point leaves an existing file there untouched.
    `plan` (JSON-able: plan/memory.py's MemoryPlan.to_dict()) goes into an optional memory plan section."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ClawFileError(f"{path}: is a directory; give a file name such as model.claw")
    for name in graph.constants:
        if not isinstance(name, str):
            raise ClawFileError(f"{path}: cannot save: constant name {name!r} is not a string")
    metadata = _encode_metadata(graph, path)
    constants = _prepare_constants(graph, path)

    index, data_len = [], 0
    for name, dtype, arr in constants:
        data_len = _align(data_len)
        index.append({"name": name, "dtype": dtype, "shape": [int(s) for s in arr.shape],
                      "offset": data_len, "nbytes": int(arr.nbytes)})
        data_len += arr.nbytes
    index_bytes = _dumps(index)
    plan_bytes = b"" if plan is None else _dumps(_jsonable(plan, "memory plan", path))

    n = 3 if plan is None else 4
    header_len = _FIXED.size + n * _ENTRY.size + _CRC.size
    meta_off = _align(header_len)
    index_off = _align(meta_off + len(metadata))
    plan_off = _align(index_off + len(index_bytes))
    data_off = _align(plan_off + len(plan_bytes))
    file_len = data_off + data_len

    # The data CRC is computed up front (memory-speed) so the file can be written front to back in one pass.
    data_crc, pos = 0, 0
    for entry, (_, _, arr) in zip(index, constants):
        data_crc = zlib.crc32(bytes(entry["offset"] - pos), data_crc)
        data_crc = zlib.crc32(arr.reshape(-1).view(np.uint8), data_crc)
        pos = entry["offset"] + arr.nbytes
    table = [(KIND_METADATA, meta_off, metadata, zlib.crc32(metadata)),
             (KIND_CONSTANTS_INDEX, index_off, index_bytes, zlib.crc32(index_bytes)),
             (KIND_CONSTANTS_DATA, data_off, None, data_crc)]
    if plan is not None:
        table.append((KIND_MEMORY_PLAN, plan_off, plan_bytes, zlib.crc32(plan_bytes)))
    head = bytearray(_FIXED.pack(MAGIC, *FORMAT_VERSION, 0, n, 0, file_len))
    for kind, off, payload, crc in table:
        length = data_len if payload is None else len(payload)
        # A reader without plans can run the model all the same (it plans, or allocates, for itself).
        flags = 0 if kind == KIND_MEMORY_PLAN else SECTION_REQUIRED
        head += _ENTRY.pack(kind, flags, off, length, crc, 0)
    head += _CRC.pack(zlib.crc32(head))
    assert len(head) == header_len

    directory = os.path.dirname(os.path.abspath(path))
    tmp, fd = _create_temp(path, directory)
    try:
        with os.fdopen(fd, "wb") as f:
            # header | pad | metadata | pad | index | pad | (pad | constant)*, front to back.
            pos = 0
            for off, chunk in ((0, head), (meta_off, metadata), (index_off, index_bytes), (plan_off, plan_bytes)):
                _write(f, bytes(off - pos))
                _write(f, chunk)
                pos = off + len(chunk)
            _write(f, bytes(data_off - pos))
            pos = 0
            for entry, (_, _, arr) in zip(index, constants):
                _write(f, bytes(entry["offset"] - pos))
                _write(f, arr.reshape(-1).view(np.uint8))
                pos = entry["offset"] + arr.nbytes
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename makes it the file at `path`
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ClawFileError(f"{path}: cannot save: {e.strerror or e}") from e
        raise
    _fsync_directory(directory)


def _create_temp(path: str, directory: str) -> tuple[str, int]:
    # os.open with mode 0o666 (not mkstemp's 0o600) so the saved file gets the usual umask-based permissions.
    base = os.path.basename(path)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError as e:
            raise ClawFileError(f"{path}: cannot save: directory {directory} does not exist") from e
        except OSError as e:
            raise ClawFileError(f"{path}: cannot save: cannot create a file in {directory}: "
                                f"{e.strerror or e}") from e
    raise ClawFileError(f"{path}: cannot save: cannot find a free temporary file name in {directory}")


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable on POSIX. Best effort: some platforms/filesystems cannot open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------- reading

def _open(path: str) -> tuple[int, int]:
    """Open `path` read-only; return (fd, size). Missing files, directories and empty files get their own words."""
    try:
        st = os.stat(path)  # before opening: opening a FIFO would block, and Windows cannot open a directory
    except FileNotFoundError:
        raise ClawFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ClawFileError(f"{path}: cannot open: {e.strerror or e}") from e
    if stat.S_ISDIR(st.st_mode):
        raise ClawFileError(f"{path}: is a directory, not a .claw file")
    if not stat.S_ISREG(st.st_mode):
        raise ClawFileError(f"{path}: not a regular file; a .claw file must be a file that can be memory-mapped")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ClawFileError(f"{path}: no such file") from None
    except OSError as e:
        raise ClawFileError(f"{path}: cannot open: {e.strerror or e}") from e
    size = os.fstat(fd).st_size
    if size == 0:
        os.close(fd)
        raise ClawFileError(f"{path}: empty file (0 bytes), not a .claw model: a save or copy that never "
                            f"completed?")
    return fd, size


def _looks_like_onnx(head: bytes) -> bool:
    # An ONNX file is a protobuf ModelProto; onnx.save writes field 1 (ir_version, a small varint: tag 0x08)
    # first, then one of ModelProto's other fields (producer_name 0x12, ..., graph 0x3A, opset_import 0x42).
    model_proto_tags = {0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0x7A, 0xCA}
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 0x7F and (
        len(head) == 2 or head[2] in model_proto_tags)


def _not_claw(head: bytes, path: str) -> ClawFileError:
    """The error for a file whose magic is wrong, saying what it looks like instead when we can tell."""
    what = f"{path}: not a .claw file"
    if b"CLAW" in head[:8]:
        return ClawFileError(f"{what}: its first bytes ({head[:8].hex(' ')}) are a .claw signature damaged in "
                             f"transfer (line endings converted, or the 8th bit stripped — a text/ASCII-mode copy "
                             f"or a text editor?); copy the file again in binary mode")
    if _looks_like_onnx(head) or path.lower().endswith(".onnx"):
        return ClawFileError(f"{what}: it looks like an ONNX model; pass it to clawdbot.load() (which converts ONNX "
                             f"in memory) or convert it once with "
                             f"ModelConverter(source_framework='onnx').convert(path).save('model.claw')")
    if head[4:8] == b"TFL3":
        return ClawFileError(f"{what}: it looks like a TensorFlow Lite model (.tflite); convert it to .claw first")
    if head.startswith(b"PK\x03\x04"):
        return ClawFileError(f"{what}: it is a zip archive (a PyTorch checkpoint?); export the model to ONNX "
                             f"and convert that")
    if head.startswith(b"\x93NUMPY"):
        return ClawFileError(f"{what}: it is a numpy .npy array file")
    return ClawFileError(f"{what}: bad magic bytes {head[:8].hex(' ')} (a .claw file starts with "
                         f"{MAGIC.hex(' ')})")


def _parse_header(head: bytes, size: int, path: str) -> ClawHeader:
    """Check and decode the header from `head` (the file's first bytes, up to _MAX_HEADER) of a `size`-byte file.

    The order matters: the magic first (is this our format at all?), then the version (is the rest laid out
    the way we think?), then the header checksum before trusting any other field.
    """
    n = min(len(head), len(MAGIC))
    if head[:n] != MAGIC[:n]:
        raise _not_claw(head, path)
    min_header = _FIXED.size + _CRC.size
    if size < 12:
        raise ClawFileError(f"{path}: truncated: only {size} bytes, shorter than a .claw header "
                            f"({min_header} bytes at least)")
    major, minor = struct.unpack_from("<HH", head, 8)
    if major != FORMAT_VERSION[0]:
        hint = ("a newer clawdbot wrote it; upgrade clawdbot" if major > FORMAT_VERSION[0]
                else "re-convert the model with this clawdbot")
        raise ClawFileError(f"{path}: unsupported .claw format version {major}.{minor}: this clawdbot reads "
                            f"version {FORMAT_VERSION[0]}.x (up to {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}); {hint}")
    if size < _FIXED.size:
        raise ClawFileError(f"{path}: truncated: only {size} bytes, shorter than a .claw header "
                            f"({min_header} bytes at least)")
    _, _, _, flags, count, _, file_length = _FIXED.unpack_from(head, 0)
    header_len = _FIXED.size + count * _ENTRY.size + _CRC.size
    if count > MAX_SECTIONS or header_len > size:
        # The count is not covered by a checksum we can check yet: tell a short file from a bad count by the
        # length the header records.
        if count <= MAX_SECTIONS and size < file_length:
            raise ClawFileError(f"{path}: truncated: only {size} bytes, shorter than its own header "
                                f"({header_len} bytes; the file should have {file_length})")
        raise ClawFileError(f"{path}: corrupted header: implausible section count {count}")
    (stored,) = _CRC.unpack_from(head, header_len - _CRC.size)
    computed = zlib.crc32(head[:header_len - _CRC.size])
    if stored != computed:
        raise ClawFileError(f"{path}: corrupted: header checksum mismatch (stored {stored:#010x}, computed "
                            f"{computed:#010x})")
    if flags & HEADER_REQUIRED_FLAGS & ~KNOWN_HEADER_FLAGS:
        raise ClawFileError(f"{path}: needs a newer clawdbot: the file uses required features (header flags "
                            f"{flags:#010x}) that this version ({_version()}) does not know")
    sections = tuple(SectionInfo(kind, off, length, crc, sflags) for kind, sflags, off, length, crc, _ in
                     (_ENTRY.unpack_from(head, _FIXED.size + i * _ENTRY.size) for i in range(count)))

    if size < file_length:
        short = [s for s in sorted(sections, key=lambda s: s.offset) if s.end > size]
        where = f"; the {short[0].name} section (bytes {short[0].offset}..{short[0].end}) is cut off" if short else ""
        raise ClawFileError(f"{path}: truncated: the file has {size} bytes but its header says {file_length}{where} "
                            f"(an interrupted copy or download?)")
    if size > file_length:
        raise ClawFileError(f"{path}: corrupted: {size - file_length} unexpected bytes after the end of the file "
                            f"(its header says {file_length} bytes); was something appended to it?")

    bad = f"{path}: invalid .claw file:"
    seen: set[int] = set()
    for s in sections:
        if s.kind == 0:
            raise ClawFileError(f"{bad} section table entry with kind 0")
        if s.offset < header_len or s.end > file_length:
            raise ClawFileError(f"{bad} the {s.name} section (bytes {s.offset}..{s.end}) lies outside the "
                                f"file's sections area (bytes {header_len}..{file_length})")
        if s.kind in SECTION_NAMES:
            if s.kind in seen:
                raise ClawFileError(f"{bad} more than one {s.name} section")
            seen.add(s.kind)
        elif s.required:
            raise ClawFileError(f"{path}: needs a newer clawdbot: it has a required section of kind {s.kind}, "
                                f"which this version ({_version()}) does not know")
    ordered = sorted(sections, key=lambda s: s.offset)
    for a, b in zip(ordered, ordered[1:]):
        if b.offset < a.end:
            raise ClawFileError(f"{bad} the {a.name} and {b.name} sections overlap")
    for kind in REQUIRED_KINDS:
        name = SECTION_NAMES[kind]
        if kind not in seen:
            raise ClawFileError(f"{bad} it has no {name} section")
    data = next(s for s in sections if s.kind == KIND_CONSTANTS_DATA)
    if data.offset % ALIGNMENT:
        raise ClawFileError(f"{bad} the constants data section starts at byte {data.offset}, not a multiple "
                            f"of {ALIGNMENT}")
    return ClawHeader(FormatVersion(major, minor), flags, file_length, header_len, sections)


def _version() -> str:
    return f"format {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}"


def read_header(path: str | os.PathLike) -> ClawHeader:
    """Check and decode the header only (version, section table): cheap, for `claw info`."""
    path = os.fspath(path)
    fd, size = _open(path)
    try:
        head = b""
        while len(head) < min(size, _MAX_HEADER):
            chunk = os.read(fd, _MAX_HEADER - len(head))
            if not chunk:
                break
            head += chunk
    except OSError as e:
        raise ClawFileError(f"{path}: cannot read: {e.strerror or e}") from e
    finally:
        os.close(fd)
    return _parse_header(head, size, path)


def _verify(mm: mmap.mmap, header: ClawHeader, path: str) -> None:
    """Check every known section's CRC, and that the bytes outside any section (alignment padding) are zero,
    so that no byte of the file can change unnoticed."""
    with memoryview(mm) as mv:
        for s in header.sections:
            if s.kind not in SECTION_NAMES:
                continue  # an optional section we do not read; its checksum is its reader's business
            with mv[s.offset:s.end] as part:
                computed = zlib.crc32(part)
            if computed != s.crc32:
                raise ClawFileError(f"{path}: corrupted: checksum mismatch in the {s.name} section (bytes "
                                    f"{s.offset}..{s.end}; stored {s.crc32:#010x}, computed {computed:#010x})")
    pos = header.header_length
    for s in sorted(header.sections, key=lambda s: s.offset) + [SectionInfo(0, header.file_length, 0, 0)]:
        for start in range(pos, s.offset, 1 << 20):
            gap = mm[start:min(s.offset, start + (1 << 20))]
            if gap.count(0) != len(gap):
                at = start + next(i for i, b in enumerate(gap) if b)
                raise ClawFileError(f"{path}: corrupted: non-zero byte at offset {at}, in the padding between "
                                    f"sections")
        pos = s.end


def _reject_constant(token: str):
    raise ValueError(f"{token} is not allowed (a .claw file holds strict JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _parse_json(raw: bytes, section: SectionInfo, path: str) -> Any:
    what = f"{path}: malformed {section.name} section"
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float)
    except UnicodeDecodeError as e:
        raise ClawFileError(f"{what}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ClawFileError(f"{what}: invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        raise ClawFileError(f"{what}: {e}") from None
    except RecursionError:
        raise ClawFileError(f"{what}: JSON nested too deeply") from None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_index(index: Any, data: SectionInfo, path: str) -> list[tuple[str, str, tuple[int, ...], int, int]]:
    """Validate the constants index against the data section; return (name, dtype, shape, offset, nbytes)s."""
    bad = f"{path}: malformed constants index"
    if not isinstance(index, list):
        raise ClawFileError(f"{bad}: expected a JSON list, found {type(index).__name__}")
    out, seen = [], set()
    for i, e in enumerate(index):
        if not isinstance(e, dict):
            raise ClawFileError(f"{bad}: entry {i} is a {type(e).__name__}, not an object")
        name = e.get("name")
        if not isinstance(name, str):
            raise ClawFileError(f"{bad}: entry {i} has no string 'name'")
        where = f"{path}: constant {name!r}"
        missing = [k for k in ("dtype", "shape", "offset", "nbytes") if k not in e]
        if missing:
            raise ClawFileError(f"{bad}: entry for constant {name!r} lacks {', '.join(missing)}")
        if name in seen:
            raise ClawFileError(f"{bad}: constant {name!r} is listed twice")
        seen.add(name)
        dtype, shape, offset, nbytes = e["dtype"], e["shape"], e["offset"], e["nbytes"]
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ClawFileError(f"{where} has unknown dtype {dtype!r}; this clawdbot knows {', '.join(DTYPES)}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ClawFileError(f"{where} has invalid shape {shape!r}: expected a list of non-negative integers")
        if not (_is_int(offset) and offset >= 0 and _is_int(nbytes) and nbytes >= 0):
            raise ClawFileError(f"{where} has invalid offset/nbytes {offset!r}/{nbytes!r}")
        expected = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes != expected:
            raise ClawFileError(f"{where}: nbytes {nbytes} does not match {dtype}{shape} ({expected} bytes)")
        if offset % ALIGNMENT:
            raise ClawFileError(f"{where} starts at data offset {offset}, not a multiple of {ALIGNMENT}")
        if offset + nbytes > data.length:
            raise ClawFileError(f"{where} ({dtype}{shape}) occupies bytes {offset}..{offset + nbytes} of the "
                                f"constants data section, which has {data.length}: its bytes fall outside the "
                                f"data section")
        out.append((name, dtype, tuple(shape), offset, nbytes))
    return out


def load_graph(path: str | os.PathLike, *, verify: bool = True) -> Graph:
    """The graph of `path` (see load_model); a memory plan section is not read."""
    return load_model(path, verify=verify, plan=False)[0]


def load_model(path: str | os.PathLike, *, verify: bool = True, plan: bool = True) -> tuple[Graph, dict | None]:
    """Map `path` read-only and return its graph; constants are zero-copy, read-only views into the map.

    The map stays open as long as any constant (or a view of one) is alive. verify=True checks every section's
    checksum (a full read of the file: ~30 ms per 100 MB from the page cache); verify=False trusts the bytes
    and touches only the header and the JSON sections, so weights are paged in on first use.
    """
    path = os.fspath(path)
    fd, _ = _open(path)
    try:
        mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        raise ClawFileError(f"{path}: cannot memory-map: {e}") from e
    finally:
        os.close(fd)  # the map holds its own reference to the file
    try:
        return _load(mm, path, verify), _load_plan(mm, path) if plan else None
    except BaseException:
        try:
            mm.close()
        except BufferError:
            pass  # an array already points into it; it closes when that is collected
        raise


def _load_plan(mm: mmap.mmap, path: str) -> dict | None:
    """The memory plan section's JSON, or None when the file has none. Its checksum is checked whatever
    `verify` says: the executor writes where it says."""
    header = _parse_header(mm[:_MAX_HEADER], len(mm), path)
    s = header.section(KIND_MEMORY_PLAN)
    if s is None:
        return None
    raw = mm[s.offset:s.end]
    if zlib.crc32(raw) != s.crc32:
        raise ClawFileError(f"{path}: corrupted: checksum mismatch in the memory plan section (bytes "
                            f"{s.offset}..{s.end})")
    plan = _parse_json(raw, s, path)
    if not isinstance(plan, dict):
        raise ClawFileError(f"{path}: malformed memory plan section: expected a JSON object")
    return plan


def _load(mm: mmap.mmap, path: str, verify: bool) -> Graph:
    header = _parse_header(mm[:_MAX_HEADER], len(mm), path)
    if verify:
        _verify(mm, header, path)
    meta_s, index_s, data_s = (header.section(k) for k in (KIND_METADATA, KIND_CONSTANTS_INDEX,
                                                             KIND_CONSTANTS_DATA))
    d = _parse_json(mm[meta_s.offset:meta_s.end], meta_s, path)
    entries = _check_index(_parse_json(mm[index_s.offset:index_s.end], index_s, path), data_s, path)
    if not isinstance(d, dict):
        raise ClawFileError(f"{path}: malformed metadata section: expected a JSON object, found "
                            f"{type(d).__name__}")
    listed = d.get("constants", [])
    names = sorted(e[0] for e in entries)
    if not isinstance(listed, list) or sorted(map(str, listed)) != names:
        raise ClawFileError(f"{path}: corrupted: the metadata lists constants {listed!r} but the constants index "
                            f"has {names!r}")
    try:
        graph = Graph.from_dict(d, {})
    except KeyError as e:
        raise ClawFileError(f"{path}: malformed metadata section: not a claw_ir graph (missing field {e})") from None
    except (TypeError, ValueError, AttributeError, IndexError) as e:
        raise ClawFileError(f"{path}: malformed metadata section: not a claw_ir graph ({e})") from None

    if verify:
        for name, dtype, _, offset, nbytes in entries:
            start = data_s.offset + offset
            if dtype == "bool" and mm[start:start + nbytes].translate(None, b"\x00\x01"):
                raise ClawFileError(f"{path}: corrupted: bool constant {name!r} holds bytes other than 0 and 1")
    constants = {}
    for name, dtype, shape, offset, nbytes in entries:
        dt = np.dtype(dtype).newbyteorder("<")  # the file is little-endian on every host
        # frombuffer on a read-only map gives a read-only array whose .base keeps the map alive.
        arr = np.frombuffer(mm, dtype=dt, count=nbytes // dt.itemsize, offset=data_s.offset + offset)
        constants[name] = arr.reshape(shape)
    graph.constants = constants
    return graph
