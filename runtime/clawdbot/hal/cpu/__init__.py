"""CPU driver (registers itself as "cpu")."""
from .driver import CpuDriver

__all__ = ["CpuDriver"]
