"""Files written whole or not at all: into a temp file in the same folder, renamed over the target once
complete, so a reader (or a crash) never sees half a file and an old file survives a failed write.

The .claw writer (ir/clawfile.py) and the bundle and board-side writers keep their own: they also fsync for
power cuts, or must stay standard-library-only on a board.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path` for writing; on a clean exit it replaces `path` (mode 0644: mkstemp's
    0600 would otherwise survive the rename), on an error it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
