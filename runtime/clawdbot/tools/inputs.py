"""Random feeds for a session's declared inputs (benchmarks, profiler, CLI demos)."""
from __future__ import annotations

import numpy as np


def random_inputs(specs, batch: int = 1, seed: int = 0, int_high: int = 100) -> dict[str, np.ndarray]:
    """One array per input spec; symbolic or unknown dims take `batch`. Integer inputs are drawn from
    [0, int_high) so they are valid indices for embedding tables of at least that size."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for s in specs:
        shape = [d if isinstance(d, int) else batch for d in (s.shape or ())]
        if s.dtype.startswith("float"):
            feeds[s.name] = rng.standard_normal(shape).astype(s.dtype)
        elif s.dtype == "bool":
            feeds[s.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            feeds[s.name] = rng.integers(0, int_high, shape).astype(s.dtype)
    return feeds
