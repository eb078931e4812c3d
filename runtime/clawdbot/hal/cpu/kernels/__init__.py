"""CPU reference kernels, one module per op family. numpy (OpenBLAS) does the heavy lifting; hot loops that
numpy cannot express well call the Cython kernels through hal/cpu/fast.py."""
from .registry import KERNELS, kernel, kernel_factory

from . import (activation, conv, elementwise, index, linalg, movement, norm, pool,  # noqa: E402,F401
               quant, reduce, resize, shape)

__all__ = ["KERNELS", "kernel", "kernel_factory"]
