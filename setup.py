"""Build script for clawdbot's compiled extensions.

Everything about the package itself (metadata, dependencies, package layout)
lives in pyproject.toml; this file only declares the Cython kernels of the CPU
driver (runtime/clawdbot/hal/cpu/_cython/) so that `pip install`, `pip wheel`
and `python setup.py build_ext --inplace` compile them.

Build-time environment variables:
  CLAWDBOT_CFLAGS        extra compiler flags, appended last so they win
                         (the cross-builds pass e.g. -mcpu=cortex-a72 here).
  CLAWDBOT_CYTHON_DEBUG  "1" turns Cython bounds/wraparound checks back on.

The kernels use typed memoryviews only, so numpy headers are not needed here.
"""

import json
import os
import shlex
import sys

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

_PACKAGE = "clawdbot.hal.cpu._cython"
_SOURCE_DIR = os.path.join("runtime", *_PACKAGE.split("."))
_MODULES = ("im2col", "pool", "depthwise", "mathfn", "qgemm")
# Cython output depends on these as well as on the .pyx/.pxd sources, but
# cythonize only compares timestamps; remember the last configuration here and
# force regeneration when it changes (see _config_changed).
_STAMP = os.path.join("build", "clawdbot-cython-config.json")


def _env_flag(name):
    return os.environ.get(name, "").strip() == "1"


def _compile_args():
    if sys.platform == "win32":
        # MSVC: /fp:precise is its default, i.e. IEEE semantics already.
        base = ["/O2"]
    else:
        # Full optimisation for auto-vectorisation, but IEEE semantics kept:
        # no -ffast-math (the kernels must match the numpy fallback and the
        # ONNX oracles), and no FMA contraction so results do not change
        # between an x86 host build and an FMA-capable board build.
        base = ["-O3", "-fno-fast-math", "-ffp-contract=off"]
    return base + shlex.split(os.environ.get("CLAWDBOT_CFLAGS", ""))


def _directives(debug):
    return {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": True,
        "initializedcheck": False,
        "embedsignature": True,
    }


def _config_changed(config):
    try:
        with open(_STAMP) as f:
            previous = json.load(f)
    except (OSError, ValueError):
        previous = None
    if previous == config:
        return False
    os.makedirs(os.path.dirname(_STAMP), exist_ok=True)
    with open(_STAMP, "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    # A first build with no stamp has nothing stale to replace, but a .c left
    # over from an unknown configuration might be; regenerate to be sure.
    return True


def _extensions():
    from Cython.Build import cythonize

    debug = _env_flag("CLAWDBOT_CYTHON_DEBUG")
    cflags = _compile_args()
    directives = _directives(debug)
    extensions = [
        Extension(
            f"{_PACKAGE}.{name}",
            sources=[os.path.join(_SOURCE_DIR, f"{name}.pyx")],
            depends=[os.path.join(_SOURCE_DIR, "_typedefs.pxd"), os.path.join(_SOURCE_DIR, "qgemm_impl.h")],
            include_dirs=[_SOURCE_DIR],
            extra_compile_args=cflags,
        )
        for name in _MODULES
    ]
    force = _config_changed({"cflags": cflags, "directives": directives})
    return cythonize(
        extensions,
        compiler_directives=directives,
        # The package root, so the kernels' relative cimports resolve.
        include_path=["runtime"],
        force=force,
        quiet=True,
    )


class _BuildPyWithConfig(build_py):
    """Ship the compile flags inside the package (build_config.json next to the kernels), so a wheel built
    for a board can be checked for that board's flags after the fact: the .so files don't say."""

    def run(self):
        super().run()
        path = os.path.join(self.build_lib, *_PACKAGE.split("."), "build_config.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump({"cflags": _compile_args(), "directives": _directives(_env_flag("CLAWDBOT_CYTHON_DEBUG"))},
                      f, indent=1, sort_keys=True)
            f.write("\n")


setup(
    cmdclass={"build_py": _BuildPyWithConfig},
    ext_modules=_extensions(),
    # The generated C sits next to the .pyx (gitignored) and setuptools would
    # otherwise ship it in wheels as package data: megabytes of no use at run
    # time. The .pyx/.pxd stay, per pyproject.toml.
    exclude_package_data={"": ["*.c"]},
)
