"""ONNX op handlers by (domain, op_type, since-version). Lookup picks the newest handler whose `since` is not
above the model's opset for that domain, like the ONNX reference evaluator does."""
from __future__ import annotations

import bisect
from typing import Callable

Handler = Callable[..., None]


class OnnxOpRegistry:
    def __init__(self):
        self._ops: dict[tuple[str, str], list[tuple[int, Handler]]] = {}

    def insert(self, op_type: str, handler: Handler, since: int = 1, domain: str = "") -> None:
        versions = self._ops.setdefault((domain, op_type), [])
        if any(v == since for v, _ in versions):
            raise ValueError(f"ONNX handler {domain or 'ai.onnx'}::{op_type} since {since} registered twice")
        bisect.insort(versions, (since, handler), key=lambda t: t[0])

    def lookup(self, op_type: str, opset: int, domain: str = "") -> Handler | None:
        versions = self._ops.get((domain, op_type))
        if not versions:
            return None
        best = None
        for since, h in versions:
            if since <= opset:
                best = h
        return best

    def op_types(self, domain: str = "") -> list[str]:
        return sorted(t for d, t in self._ops if d == domain)
