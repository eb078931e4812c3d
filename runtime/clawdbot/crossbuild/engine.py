"""The Docker engine, through the Docker SDK: start it when it isn't running (a CI machine has no systemd),
make the Debian base image locally when no registry is reachable, and build toolchain images tagged by the
hash of their inputs so a rebuild only happens when an input changed."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from ..errors import BuildError
from . import debian, wheelhouse
from .progress import Progress
from .toolchains import Toolchain

DEFAULT_BASE = "debian:bookworm-slim"
LOCAL_BASE = "clawdbot/debian:{suite}-minbase"
INSTALL_HINT = ("install Docker's engine (Debian: apt-get install docker.io, or `invoke setup`), or build "
                "without Docker: --toolchain host")


def _sdk():
    try:
        import docker
        return docker
    except ImportError:
        raise BuildError("the Docker toolchain needs the Docker SDK for Python: pip install 'clawdbot[build]'")


class Engine:
    def __init__(self, client, progress: Progress):
        self.client = client
        self.progress = progress

    @classmethod
    def connect(cls, progress: Progress, *, start: bool = True, log: Path | None = None) -> "Engine":
        """Connect to the engine; if none answers and we may (root, dockerd installed), start one."""
        docker = _sdk()
        try:
            return cls(docker.from_env(), progress)
        except docker.errors.DockerException as first:
            if not start:
                raise BuildError(f"no Docker engine answers ({first}); {INSTALL_HINT}") from None
        dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
        if dockerd is None:
            raise BuildError(f"no Docker engine is running and dockerd is not installed; {INSTALL_HINT}")
        if os.geteuid() != 0:
            raise BuildError("no Docker engine is running, and starting dockerd needs root: start it "
                             "(e.g. `sudo dockerd &`) or use --toolchain host")
        log = log or Path(tempfile.gettempdir()) / "clawdbot-dockerd.log"
        progress.say(f"==> starting dockerd in the background (log: {log})")
        with open(log, "ab") as out:
            # A new session so that the engine outlives this command, as a service would.
            subprocess.Popen([dockerd], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                return cls(docker.from_env(), progress)
            except docker.errors.DockerException as e:
                if time.monotonic() > deadline:
                    raise BuildError(f"dockerd did not answer within 60 s ({e}); see {log}") from None
                time.sleep(1)

    @staticmethod
    def available() -> bool:
        try:
            docker = _sdk()
            docker.from_env().ping()
            return True
        except Exception:
            return False

    def image_id(self, ref: str) -> str | None:
        docker = _sdk()
        try:
            return self.client.images.get(ref).id
        except docker.errors.ImageNotFound:
            return None

    # -- base image -------------------------------------------------------------------------------------
    def base_image(self, suite: str, requested: str | None = None) -> tuple[str, str]:
        """(reference, image id) of the toolchain's base: `requested` if given, else debian:<suite>-slim if
        present or pullable, else a minbase image made here from Debian's packages."""
        docker = _sdk()
        if requested:
            image = self.image_id(requested)
            if image is None:
                raise BuildError(f"base image {requested!r} is not in the local engine; load it (docker load) "
                                 f"or leave --base-image out to make one from Debian's packages")
            return requested, image
        official = DEFAULT_BASE.replace("bookworm", suite)
        local = LOCAL_BASE.format(suite=suite)
        for ref in (official, local):
            image = self.image_id(ref)
            if image:
                return ref, image
        try:
            with self.progress.step(f"pull {official}"):
                self.client.images.pull(official)
            return official, self.image_id(official)
        except docker.errors.APIError as e:
            self.progress.say(f"    no registry: {str(e).splitlines()[0][:160]}")
        return local, self.make_base_image(suite)

    def make_base_image(self, suite: str) -> str:
        """debootstrap a minbase Debian `suite` and import it as clawdbot/debian:<suite>-minbase."""
        ref = LOCAL_BASE.format(suite=suite)
        repo, tag = ref.rsplit(":", 1)
        with self.progress.step(f"base image {ref} from Debian's packages (debootstrap, about 40 s)"), \
                tempfile.TemporaryDirectory(prefix="clawdbot-rootfs-") as work:
            root = debian.make_base_rootfs(Path(work), suite, self.progress)
            archive = Path(work) / "rootfs.tar"
            with tarfile.open(archive, "w") as tar:
                # numeric owners: the rootfs's uids must survive as they are, not be remapped by name
                tar.add(root, arcname=".", filter=_numeric_owner)
            self.client.api.import_image_from_file(str(archive), repository=repo, tag=tag)
        image = self.image_id(ref)
        if image is None:
            raise BuildError(f"docker import of {ref} reported no error but the image is missing")
        return image

    # -- toolchain image --------------------------------------------------------------------------------
    def toolchain_image(self, tc: Toolchain, cache: Path, base: str | None = None) -> tuple[str, str]:
        """Build (or reuse) the toolchain's image; returns (tag, image id). The tag is a hash of everything
        that goes into the image, so an unchanged toolchain is never rebuilt and a changed one always is."""
        base_ref, base_id = self.base_image(tc.debian_suite, base)
        machine = os.uname().machine
        wheels = wheelhouse.download(tc.build_requirements, cache, self.progress,
                                     platforms=wheelhouse.build_platforms(machine),
                                     python_version=tc.python, abi="cp" + tc.python.replace(".", ""))
        mirror, security = debian.apt_mirrors() if base_ref != DEFAULT_BASE.replace("bookworm", tc.debian_suite) \
            else ("", None)
        args = {"BASE_IMAGE": base_ref, "DEBIAN_MIRROR": mirror, "DEBIAN_SECURITY_MIRROR": security or ""}
        h = hashlib.sha256()
        for part in (tc.dockerfile.read_bytes(), tc.build_requirements.read_bytes(),
                     json.dumps(args, sort_keys=True).encode(), base_id.encode()):
            h.update(hashlib.sha256(part).digest())
        for w in wheels:
            h.update(w.name.encode() + hashlib.sha256(w.read_bytes()).digest())
        tag = f"clawdbot-toolchain/{tc.name}:{h.hexdigest()[:16]}"
        image = self.image_id(tag)
        if image:
            self.progress.say(f"==> toolchain image {tag}: cached")
            return tag, image
        with self.progress.step(f"toolchain image {tag} (apt inside the build; about 1 min)"), \
                tempfile.TemporaryDirectory(prefix="clawdbot-ctx-") as ctx:
            shutil.copy(tc.dockerfile, Path(ctx) / "Dockerfile")
            shutil.copy(tc.build_requirements, Path(ctx) / "build-requirements.txt")
            (Path(ctx) / "wheels").mkdir()
            for w in wheels:
                shutil.copy(w, Path(ctx) / "wheels" / w.name)
            lines = []
            for chunk in self.client.api.build(path=ctx, tag=tag, buildargs=args, rm=True, forcerm=True,
                                               pull=False, decode=True):
                if "error" in chunk:
                    tail = "\n".join("    " + t for t in lines[-20:])
                    raise BuildError(f"toolchain image {tc.name} ({tc.dockerfile}): {chunk['error'].strip()}\n{tail}")
                text = chunk.get("stream", "")
                for line in text.splitlines():
                    lines.append(line)
                    if line.startswith("Step "):
                        self.progress.say(f"    {line[:120]}")
                    else:
                        self.progress.detail(line)
        image = self.image_id(tag)
        if image is None:
            raise BuildError(f"toolchain image {tag} was not created; see the build output above")
        return tag, image

    # -- containers -------------------------------------------------------------------------------------
    def run(self, image: str, argv: Sequence[str], *, what: str, mounts: Mapping[Path, str],
            env: Mapping[str, str], workdir: str) -> list[str]:
        """Run argv in a throwaway container of `image` with no network (builds must be hermetic)."""
        volumes = {str(host): {"bind": inside, "mode": "rw"} for host, inside in mounts.items()}
        container = self.client.containers.run(
            image, list(argv), detach=True, volumes=volumes, environment=dict(env), working_dir=workdir,
            user=f"{os.getuid()}:{os.getgid()}", network_disabled=True)
        try:
            tail = self.progress.relay(_lines(container.logs(stream=True, follow=True)))
            status = container.wait().get("StatusCode", 1)
        finally:
            container.remove(force=True)
        if status != 0:
            shown = "\n".join("    " + t for t in tail[-25:])
            raise BuildError(f"{what} failed in {image} (exit {status}):\n{shown}")
        return tail

    def package_versions(self, image: str, packages: Sequence[str]) -> dict[str, str]:
        out = self.client.containers.run(image, [*debian.DPKG_VERSIONS, *packages], remove=True,
                                         network_disabled=True)
        return debian.parse_versions(out.decode())


def _numeric_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uname = info.gname = ""
    return info


def _lines(chunks):
    buf = b""
    for chunk in chunks:
        buf += chunk
        *done, buf = buf.split(b"\n")
        for line in done:
            yield line.decode(errors="replace")
    if buf:
        yield buf.decode(errors="replace")
