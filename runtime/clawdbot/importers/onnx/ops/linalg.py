"""ONNX -> claw: linalg family (MatMul, Gemm, Einsum, Det)."""
from __future__ import annotations


def matmul(b, n):
    b.emit("matmul", [n.input(0), n.input(1)], n.outputs)


def gemm(b, n):
    # Opsets 7-10 require C, 11+ make it optional; the claw op takes it as an optional third input.
    inputs = [n.input(0), n.input(1)] + ([n.input(2)] if n.has_input(2) else [])
    b.emit("gemm", inputs, n.outputs, alpha=float(n.attr("alpha", 1.0)), beta=float(n.attr("beta", 1.0)),
           trans_a=bool(n.attr("transA", 0)), trans_b=bool(n.attr("transB", 0)))


def einsum(b, n):
    b.emit("einsum", n.inputs, n.outputs, equation=n.attr("equation"))


def det(b, n):
    b.emit("det", [n.input(0)], n.outputs)


def register(reg):
    reg.insert("MatMul", matmul, since=1)
    reg.insert("Gemm", gemm, since=1)
    reg.insert("Einsum", einsum, since=12)
    reg.insert("Det", det, since=11)
