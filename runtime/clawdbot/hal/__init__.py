"""Hardware abstraction layer: the driver contract and its registry. Drivers live in subpackages."""
from .driver import Driver, DriverCapabilities, get_driver, list_drivers, register_driver

__all__ = ["Driver", "DriverCapabilities", "get_driver", "list_drivers", "register_driver"]
