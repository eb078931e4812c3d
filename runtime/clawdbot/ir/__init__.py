"""claw_ir: the graph, its op set, inference, validation and the .claw file. Imports nothing above it."""
from .graph import Dim, Graph, Node, QuantParams, TensorType

__all__ = ["Dim", "Graph", "Node", "QuantParams", "TensorType"]
