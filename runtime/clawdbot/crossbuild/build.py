"""`invoke build --target T`: model -> .claw, runtime wheel for the board, dependency wheels, one bundle.

Cheap checks come first (target, model conversion, memory budget), so a model that cannot fit the board
fails in seconds, before any image or compile step.
"""
from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..errors import BuildError, ClawError
from . import bundle as bundle_mod
from . import compile as compile_mod
from . import source, wheelhouse
from .boot import boot_files
from .progress import Progress
from .targets import Target, load_target
from .toolchains import Toolchain, load_toolchain

if TYPE_CHECKING:
    from ..plan.memory import MemoryPlan

DEFAULT_MODEL = "mobilenet_v2"
# Peak RSS of a Python process that imported numpy and clawdbot and ran a one-node session: 57 MiB on the
# x86_64 build host (Python 3.11, numpy 2.4 with its OpenBLAS). Not measured on a board yet; rounded up.
RUNTIME_OVERHEAD_MIB = 64
CHECK_TOLERANCE = 1e-4   # of the output's scale; ARM and x86 builds of numpy/OpenBLAS round differently
DRIVERS_AVAILABLE = {"cpu"}
TOOLCHAIN_KINDS = ("auto", "docker", "host")


@dataclass
class BuildOptions:
    target: str
    root: Path
    model: str | None = None
    quantize: int | None = None
    toolchain: str = "auto"          # docker | host | auto
    ram_mib: int | None = None
    base_image: str | None = None
    out: Path | None = None
    cache: Path | None = None
    targets_dir: Path | None = None
    sign_key: Path | None = None
    dims: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.targets_dir = self.targets_dir or self.root / "targets"
        self.out = self.out or self.root / "artifacts" / "bundles"
        self.cache = self.cache or self.root / "artifacts" / "cache"


@dataclass
class BuildResult:
    bundle: Path
    manifest: dict


# -- model -------------------------------------------------------------------------------------------------
def convert_model(spec: str | None, quantize: int | None):
    """(name, graph) for a path to .onnx/.claw, or a zoo model name (default mobilenet_v2)."""
    from ..converter import ModelConverter
    spec = spec or DEFAULT_MODEL
    path = Path(spec)
    if path.suffix == ".claw":
        if quantize:
            raise BuildError(f"{spec}: --quantize applies when converting; give the source .onnx model")
        from ..ir.clawfile import load_graph
        return path.stem, load_graph(path)
    converter = ModelConverter(source_framework="onnx", target_format="claw_ir", quantization_bits=quantize)
    if path.suffix == ".onnx" or path.exists():
        if not path.is_file():
            raise BuildError(f"model {spec}: no such file")
        return path.stem, converter.convert(str(path)).graph
    from ..tools import zoo
    if spec not in zoo.MODELS:
        raise BuildError(f"model {spec!r} is neither a file nor a zoo model ({', '.join(sorted(zoo.MODELS))})")
    return spec, converter.convert(zoo.build(spec)).graph


def check_memory(name: str, graph, target: Target, ram_mib: int | None, dims: dict[str, int]) -> dict:
    return memory_report(name, plan_model(name, graph, dims), target, ram_mib)


def plan_model(name: str, graph, dims: dict[str, int]) -> MemoryPlan:
    """The CPU memory plan the bundle's .claw carries and the budget is checked against."""
    from ..plan.memory import plan_memory
    try:
        return plan_memory(graph, dims)
    except ClawError as e:
        raise BuildError(f"model {name}: no memory plan: {e}") from None


def memory_report(name: str, plan: MemoryPlan, target: Target, ram_mib: int | None) -> dict:
    """The budget verdict on `plan` for the target's RAM variant, shared by `invoke build` and
    `claw convert --target`: the manifest's memory report, or a BuildError (one line) when it does not fit."""
    variant = target.variant(ram_mib)
    overhead = RUNTIME_OVERHEAD_MIB << 20
    need = plan.total_bytes(overhead)
    budget = variant.budget_mib << 20
    report = {"method": "arena plan: weights + planned arena + graph inputs + runtime overhead",
              "driver": plan.driver, "dims": dict(plan.dims), "assumed": list(plan.assumed),
              "weights_bytes": plan.weights_bytes, "arena_bytes": plan.arena_bytes, "inputs_bytes": plan.inputs_bytes,
              "lower_bound_bytes": plan.lower_bound, "efficiency": round(plan.efficiency, 4),
              "runtime_overhead_bytes": overhead, "need_bytes": need, "ram_mib": variant.ram_mib,
              "budget_bytes": budget, "margin_bytes": budget - need, "fits": need <= budget,
              "biggest": [{"buffer": n, "bytes": b} for n, b in plan.contributors(5)],
              "dynamic": list(plan.dynamic)}  # values sized at run time: not in the arena, so not in need_bytes
    if need > budget:
        raise BuildError(over_budget_message(name, plan, target.name, variant.ram_mib, need, budget))
    return report


def over_budget_message(name: str, plan: MemoryPlan, target: str, ram_mib: int, need: int, budget: int) -> str:
    top = ", ".join(f"{n} {b / 2**20:.1f} MiB" for n, b in plan.contributors(5))
    return (f"model {name} needs {need / 2**20:.1f} MiB but {target} ({ram_mib} MiB RAM) allows "
            f"{budget / 2**20:.1f} MiB: weights {plan.weights_bytes / 2**20:.1f} MiB + arena "
            f"{plan.arena_bytes / 2**20:.1f} MiB (lower bound {plan.lower_bound / 2**20:.1f} MiB) + inputs "
            f"{plan.inputs_bytes / 2**20:.1f} MiB + runtime "
            f"{RUNTIME_OVERHEAD_MIB} MiB. Biggest at step {plan.peak_step()}: {top or 'none'}")


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def reference_run(graph) -> tuple[dict[str, bytes], dict, dict]:
    """Inputs and this host's outputs, for the board's health check to compare against."""
    from ..session import Session
    from ..tools.inputs import random_inputs
    session = Session(graph, validate_graph=False)
    feeds = random_inputs(session.inputs, batch=1, seed=0)
    outs = session.run(feeds)
    files, ins, outs_map = {}, {}, {}
    for i, (name, a) in enumerate(feeds.items()):
        files[f"model/check/input_{i}.npy"] = _npy(a)
        ins[name] = f"model/check/input_{i}.npy"
    for i, (name, a) in enumerate(outs.items()):
        files[f"model/check/output_{i}.npy"] = _npy(a)
        outs_map[name] = f"model/check/output_{i}.npy"
    return files, ins, outs_map


def _claw_bytes(graph, plan: MemoryPlan) -> bytes:
    from ..ir.clawfile import save_graph
    with tempfile.TemporaryDirectory() as d:
        save_graph(Path(d) / "model.claw", graph, plan.to_dict())
        return (Path(d) / "model.claw").read_bytes()


# -- requirements ------------------------------------------------------------------------------------------
def _pins(path: Path) -> list[str]:
    return [ln.split("#")[0].strip() for ln in path.read_text().splitlines() if ln.split("#")[0].strip()]


def _name(pin: str) -> str:
    return pin.split("==")[0].strip().lower().replace("_", "-")


# -- toolchain choice --------------------------------------------------------------------------------------
def choose_toolchain(kind: str, tc: Toolchain, progress: Progress):
    """'docker' or 'host' (auto: Docker when an engine answers or can be started, else the host compiler)."""
    from .engine import Engine
    if kind in ("docker", "auto"):
        try:
            return "docker", Engine.connect(progress)
        except BuildError as e:
            if kind == "docker":
                raise
            docker_problem = str(e)
    if shutil.which(tc.host.get("cc", "gcc")) is None:
        if kind == "host":
            raise BuildError(f"--toolchain host needs {tc.host.get('cc')}: apt-get install "
                             f"{' '.join(tc.host.get('packages', []))} (or `invoke setup`)")
        raise BuildError(f"no toolchain: {docker_problem}; and the host toolchain needs: apt-get install "
                         f"{' '.join(tc.host.get('packages', []))}")
    if kind == "auto":
        progress.say(f"==> no Docker engine ({docker_problem.splitlines()[0][:100]}); using the host toolchain")
    return "host", None


# -- the build ---------------------------------------------------------------------------------------------
def build(opts: BuildOptions, progress: Progress | None = None) -> BuildResult:
    progress = progress or Progress()
    root = opts.root
    target = load_target(opts.target, opts.targets_dir, root / "toolchains")
    tc = load_toolchain(target.toolchain, root)
    if opts.quantize not in (None, 8, 4):
        raise BuildError(f"--quantize {opts.quantize}: choose 8 or 4")
    if opts.sign_key and not Path(opts.sign_key).is_file():
        raise BuildError(f"--sign-key {opts.sign_key}: no such file (make a key pair with `invoke keygen`)")
    if opts.toolchain not in TOOLCHAIN_KINDS:
        raise BuildError(f"--toolchain {opts.toolchain!r}: choose {', '.join(TOOLCHAIN_KINDS)}")

    with progress.step(f"model {opts.model or DEFAULT_MODEL} -> .claw"):
        try:
            name, graph = convert_model(opts.model, opts.quantize)
        except BuildError:
            raise
        except ClawError as e:
            raise BuildError(f"model {opts.model or DEFAULT_MODEL}: {e}") from None
        plan = plan_model(name, graph, opts.dims)
        memory = memory_report(name, plan, target, opts.ram_mib)
        assumed = memory["assumed"]
        progress.say(f"    needs {memory['need_bytes'] / 2**20:.1f} MiB of {target.name}'s "
                     f"{memory['budget_bytes'] / 2**20:.0f} MiB budget "
                     f"({memory['margin_bytes'] / 2**20:.1f} MiB to spare)"
                     + (f" (taking {', '.join(f'{d}=1' for d in assumed)}; set others with --dims)" if assumed else ""))
        claw = _claw_bytes(graph, plan)
        check_files, check_in, check_out = reference_run(graph)

    drivers = {}
    for d in target.drivers:
        if d in DRIVERS_AVAILABLE:
            drivers[d] = "built"
        else:
            drivers[d] = f"not built: clawdbot {__version__} has no {d} driver yet"
            progress.say(f"    warning: {target.name} lists the {d} driver, which clawdbot {__version__} does not "
                         f"have yet; the bundle runs on the CPU driver")

    epoch = source.source_date_epoch(root)
    abi = target.python_abi
    req_file = root / "toolchains" / f"board-requirements-{abi}.txt"
    if not req_file.is_file():
        raise BuildError(f"no {req_file.relative_to(root)}: which numpy etc. a {abi} board installs is not pinned")
    pins = [p for p in _pins(req_file) if _name(p) != "pip"]
    # The device agent's own needs (signatures, the serial line), so `install.py --enable-agent` provisions a
    # board from the bundle alone. Content-addressed: a board that holds them is never sent them again.
    agent_req = root / "toolchains" / f"board-agent-requirements-{abi}.txt"
    agent_pins = _pins(agent_req) if agent_req.is_file() else []
    wanted = [req_file] + ([agent_req] if agent_pins else []) + \
        ([tc.build_requirements] if target.build == "on-board" else [])
    dep_wheels = [w for r in wanted for w in wheelhouse.download(r, opts.cache, progress, platforms=target.platforms,
                                                                 python_version=target.python_version, abi=abi)]

    contents: dict[str, bundle_mod.Source] = {f"wheels/{w.name}": w for w in dep_wheels}
    with tempfile.TemporaryDirectory(prefix="clawdbot-build-") as work:
        src = Path(work) / "src"
        source.export(root, src)
        out = Path(work) / "out"
        if target.build == "on-board":
            sdist_name = f"clawdbot-{__version__}"
            files = {str(p.relative_to(src)): p.read_bytes() for p in sorted(src.rglob("*")) if p.is_file()}
            contents[f"src/{sdist_name}.tar.gz"] = bundle_mod.deterministic_tar(files, sdist_name, epoch)
            toolchain_info = {"kind": "on-board", "name": tc.name,
                              "why": f"Python {target.python_version} cannot be built here; the board compiles "
                                     f"the kernels at install time with the bundled, pinned build tools"}
            install = {"mode": "on-board", "runtime": f"src/{sdist_name}.tar.gz", "requirements": pins,
                       "build_requirements": _pins(tc.build_requirements), "agent_requirements": agent_pins}
        else:
            kind, engine = choose_toolchain(opts.toolchain, tc, progress)
            if kind == "docker":
                wheel, toolchain_info = compile_mod.wheel_in_docker(engine, src, out, target, tc, epoch, opts.cache,
                                                                    progress, opts.base_image)
            else:
                wheel, toolchain_info = compile_mod.wheel_on_host(src, out, target, tc, epoch, opts.cache, progress)
            kernels = compile_mod.check_wheel(wheel, tc, target)
            progress.say(f"    {wheel.name}: {len(kernels)} {tc.arch} kernels built with {' '.join(target.cflags)}")
            contents[f"wheels/{wheel.name}"] = wheel.read_bytes()
            install = {"mode": "wheel", "runtime": f"clawdbot=={__version__}", "requirements": pins,
                       "agent_requirements": agent_pins}

        contents["model/model.claw"] = claw
        contents.update(check_files)
        contents.update(boot_files(target))
        bundle_id = f"clawdbot-{__version__}-{target.name}-{name}"
        manifest = {
            "format": 1,
            "bundle_id": bundle_id,
            "clawdbot_version": __version__,
            "target": target.to_manifest(),
            "python": {"version": target.python_version, "abi": abi, "arch": target.arch,
                       "platforms": list(target.platforms)},
            "toolchain": toolchain_info,
            "drivers": drivers,
            "install": install,
            "model": {"name": name, "file": "model/model.claw",
                      "quantize": opts.quantize, "inputs": {n: str(t) for n, t in graph.input_types()},
                      "outputs": {n: str(t) for n, t in graph.output_types()}, "memory": memory},
            "check": {"inputs": check_in, "outputs": check_out, "tolerance": CHECK_TOLERANCE},
            "source_date_epoch": epoch,
        }
        with progress.step(f"bundle {bundle_id}"):
            sign = None
            if opts.sign_key:
                from ..deploy import signing
                sign = lambda data: signing.sign(data, opts.sign_key)  # noqa: E731
            path = bundle_mod.write_bundle(opts.out, bundle_id, contents, manifest, epoch, sign)
    progress.say(f"bundle: {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return BuildResult(path, manifest)
