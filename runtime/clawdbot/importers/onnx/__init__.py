"""ONNX importer (needs the `onnx` extra)."""
from .builder import Builder, OnnxNode, Unsupported
from .importer import import_onnx, load_model

__all__ = ["Builder", "OnnxNode", "Unsupported", "import_onnx", "load_model"]
