"""CPU reference kernels, one module per op family. numpy (OpenBLAS) does the heavy lifting; hot loops that
numpy cannot express well call the Cython kernels through hal/cpu/fast.py."""
from .registry import KERNELS, kernel, kernel_factory

from . import (activation, attention, control, conv, elementwise, index, linalg, movement,  # noqa: E402,F401
               norm, pool, quant, recurrent, reduce, resize, sampling, shape, signal, wquant)

__all__ = ["KERNELS", "kernel", "kernel_factory"]
