"""`claw serve`: a model behind the Open Inference Protocol (KServe v2) REST API, so Triton and KServe clients
work unchanged. protocol.py is the wire format (pure functions); server.py the HTTP server, queue and metrics."""
from __future__ import annotations

from .protocol import ProtocolError
from .server import InferenceServer, run_until_signalled, serve

__all__ = ["InferenceServer", "ProtocolError", "run_until_signalled", "serve"]
