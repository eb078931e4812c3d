"""An emulated board for tests: `qemu-system-aarch64 -M virt -cpu <board cpu>` (TCG, no KVM or root needed)
booting Debian's arm64 kernel with the board's Debian userland as an initramfs.

    image = build_image(target, cache, progress, extra_files={"/root/app.py": b"..."},
                        command=["python3", "/root/app.py"])
    with EmulatedBoard(target, image, forwards={0: 5000}) as board:   # host port 0: pick a free one
        board.wait_for("app: ready", timeout=300)
        socket.create_connection(("127.0.0.1", board.host_port(5000)))
        serial.serial_for_url(board.serial_url)                       # the board's serial console

    disk = make_disk(tmp / "board.img", 512, {"trusted/build.pub.pem": key})  # what DISK_MOUNT holds
    board = EmulatedBoard(target, image, disk=disk).start()
    board.kill()                                                      # pull the plug
    EmulatedBoard(target, image, disk=disk).start()                   # boots from what the disk kept

The image is the kernel (Debian's linux-image-arm64, a gzip'd arm64 Image that -kernel loads as is) and one
initrd made of two concatenated gzip'd cpio archives, which the kernel unpacks in order: a base (the userland
sysroot that qemu-user tests use, trimmed of headers, docs and static libraries, with precompiled .pyc files,
the virtio and ext4 modules and a static busybox), cached by its inputs, and a small overlay with our /init, the
command and `extra_files`. Both are cached by their inputs and written staged-then-renamed, so a cache entry
is complete or absent.

/init (a POSIX sh script run by dash) mounts proc, sys and devtmpfs, loads the virtio (pci, net, rng, blk)
and ext4 modules, checks and mounts the board's disk if it has one (below), configures eth0 as 10.0.2.15/24
via 10.0.2.2 (QEMU user networking's defaults), puts the console (ttyAMA0, the virt machine's PL011) into raw
mode, prints the BOOT_MARKER line and then runs the command with its stdin, stdout and stderr on the console.
When the command exits, the board powers off (QEMU exits).

The console is a QEMU chardev on a host TCP server socket (one client at a time, e.g. pyserial's
socket://127.0.0.1:PORT); QEMU also writes everything the guest prints to console.log, which wait_for reads,
so waiting for a marker never takes the socket from a test that holds it.

Persistent storage: without a disk the board is all RAM and forgets everything at power-off. A disk is a host
raw image file with one ext4 file system and no partition table, made by make_disk (mkfs.ext4 -d: no root,
no loop device) and attached as virtio-blk with QEMU's writeback cache. /init runs `e2fsck -p` on /dev/vda
(replaying the journal after a power cut; `e2fsck -y` if -p gives up) and mounts it at DISK_MOUNT, the
agent's root (slots, `current`, parts, trusted keys), before the command starts; the console says so in a
line ending "mounted at DISK_MOUNT". An image must then keep nothing under DISK_MOUNT, which the mount would
hide: EmulatedBoard refuses such a pair.

EmulatedBoard.kill() is a power cut: SIGKILL to QEMU. The guest's page cache and whatever it had not yet
sent to the disk are lost; what the disk acknowledged is in the image file (QEMU's writes sit in the host's
page cache, which outlives QEMU), so it models a disk that keeps what it acknowledged, and tests the
guest's ordering and fsyncs, not a disk that drops its own write cache.
"""
from __future__ import annotations

import atexit
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..crossbuild import debian
from ..crossbuild.progress import Progress
from ..crossbuild.targets import Target
from ..errors import ClawError

BOOT_MARKER = "clawdbot-board: userland up"
_VERSION = 4  # bump when the image layout or /init changes: part of every cache key
KERNEL_PACKAGES = ["busybox-static"]  # plus the target's kernel package (system_kernel_package)
# Built as modules in Debian's arm64 kernel; their dependencies are found from each module's modinfo.
# crc32c_generic: ext4 and jbd2 ask the crypto API for "crc32c" (metadata_csum), which nothing loads here.
MODULES = ["virtio_pci", "virtio_net", "virtio-rng", "virtio_blk", "crc32c_generic", "ext4"]
DISK_MOUNT = "/var/lib/clawdbot"  # where /init mounts the board's disk, if it has one
GUEST_IP, GUEST_GATEWAY, GUEST_DNS = "10.0.2.15/24", "10.0.2.2", "10.0.2.3"

ExtraFile = bytes | Path


class BoardError(ClawError):
    """The emulated board could not be built, started, or did not say what was expected in time."""


# -- the image ------------------------------------------------------------------------------------------------

# Paths of the userland left out of the initramfs: what only compiling needs, and documentation.
_SKIP_DIRS = {"debootstrap", "boot", "proc", "sys", "dev", "run", "tmp", "usr/include", "usr/share/doc",
              "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian", "usr/share/gcc",
              "usr/share/bash-completion", "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf",
              "var/log"}
_SKIP_SUFFIXES = (".a",)
_EMPTY_DIRS = ["proc", "sys", "dev", "run", "tmp", "root", "var/log", "var/tmp", "mnt"]


def _kernel_package(target: Target) -> str:
    return str(target.emulation.get("system_kernel_package", f"linux-image-{target.emulation['sysroot_arch']}"))


def _check_target(target: Target) -> None:
    em = target.emulation
    if target.native or em.get("system_machine") is None or em.get("sysroot_arch") != "arm64":
        raise BoardError(f"target {target.name!r} has no arm64 system emulation ([emulation] system_machine, "
                         f"sysroot_arch = \"arm64\"); only such boards can be emulated")


def userland(target: Target, cache: Path, progress: Progress) -> Path:
    """The board's Debian userland: the same package set (so the same cached sysroot) as qemu-user tests."""
    ver = target.python_version
    em = target.emulation
    return debian.sysroot(cache, em["sysroot_arch"], em["sysroot_suite"], [f"python{ver}", f"libpython{ver}-dev"],
                          progress)


def kernel_root(target: Target, cache: Path, progress: Progress) -> Path:
    em = target.emulation
    return debian.sysroot(cache, em["sysroot_arch"], em["sysroot_suite"], [_kernel_package(target), *KERNEL_PACKAGES],
                          progress)


def _kernel(kroot: Path) -> tuple[Path, str]:
    kernels = sorted((kroot / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise BoardError(f"no kernel (boot/vmlinuz-*) in {kroot}")
    kernel = kernels[-1]
    return kernel, kernel.name[len("vmlinuz-"):]


def _modinfo_depends(ko: Path) -> list[str]:
    data = ko.read_bytes()
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    end = data.index(b"\0", i + 1)
    return [d for d in data[i + len(b"\0depends="):end].decode().split(",") if d]


def _modules(kroot: Path, release: str, names: Sequence[str]) -> list[str]:
    """Paths (under lib/modules/RELEASE) of the named modules and their dependencies, dependencies first;
    names that are built into the kernel are left out."""
    mdir = kroot / "lib/modules" / release
    norm = lambda n: n.replace("-", "_")  # module names treat - and _ alike
    builtin = {norm(Path(line).stem) for line in (mdir / "modules.builtin").read_text().split()}
    files = {norm(p.name[:-3]): p for p in (mdir / "kernel").rglob("*.ko")}
    order: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        n = norm(name)
        if n in builtin or n in chain:
            return
        if n not in files:
            raise BoardError(f"kernel {release} has no module {name!r} (and does not build it in)")
        rel = str(files[n].relative_to(mdir))
        if rel in order:
            return
        for dep in _modinfo_depends(files[n]):
            visit(dep, chain + (n,))
        order.append(rel)

    for name in names:
        visit(name, ())
    return order


class _Cpio:
    """A newc ("070701") cpio writer, which is what the kernel's initramfs unpacker reads."""

    def __init__(self, out):
        self.out = out
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", mtime: int = 0, rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, int(mtime), len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        self.ino += 1
        head = b"070701" + b"".join(b"%08x" % f for f in fields) + encoded
        self.out.write(head + b"\0" * (-len(head) % 4))
        self.out.write(data + b"\0" * (-len(data) % 4))

    def dir(self, name: str, mode: int = 0o755, mtime: int = 0) -> None:
        self._entry(name, stat.S_IFDIR | mode, mtime=mtime, nlink=2)

    def file(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        self._entry(name, stat.S_IFREG | mode, data, mtime)

    def symlink(self, name: str, target: str, mtime: int = 0) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode(), mtime)

    def chardev(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def tree(self, src: Path, dest: str, skip=lambda rel: False) -> None:
        """src's contents under dest (no leading /), in walk order (a directory before its contents)."""
        for here, dirs, files in os.walk(src):
            rel_here = os.path.relpath(here, src)
            rel_here = "" if rel_here == "." else rel_here
            dirs[:] = sorted(d for d in dirs if not skip(os.path.join(rel_here, d)))
            for name in dirs + sorted(files):
                rel = os.path.join(rel_here, name)
                if name in files and skip(rel):
                    continue
                path = os.path.join(here, name)
                st = os.lstat(path)
                guest = os.path.join(dest, rel) if dest else rel
                if stat.S_ISLNK(st.st_mode):
                    self.symlink(guest, os.readlink(path), st.st_mtime)
                elif stat.S_ISDIR(st.st_mode):
                    self.dir(guest, stat.S_IMODE(st.st_mode), st.st_mtime)
                elif stat.S_ISREG(st.st_mode):
                    self.file(guest, Path(path).read_bytes(), stat.S_IMODE(st.st_mode), st.st_mtime)

    def pycs(self, pycs: Mapping[str, bytes]) -> None:
        """.pyc files in __pycache__ directories next to their sources (already written)."""
        for d in sorted({os.path.dirname(p) for p in pycs}):
            self.dir(d)
        for p in sorted(pycs):
            self.file(p, pycs[p])

    def trailer(self) -> None:
        self._entry("TRAILER!!!", 0, nlink=1)


_COMPILE = r"""
import json, py_compile, sys
for src, dfile, out in json.load(sys.stdin):
    try:
        py_compile.compile(src, cfile=out, dfile=dfile, doraise=True)
    except Exception:
        pass  # sources that do not compile (py2 leftovers, templates) get no .pyc, as with py3compile
"""


def _compile_pycs(root: Path, dest: str, version: str, work: Path, progress: Progress) -> dict[str, bytes]:
    """Timestamp .pyc files for every .py under root (compiled here by a host Python `version`, whose bytecode
    is the guest's), keyed by their guest path (no leading /). The cpio keeps the sources' mtimes, so the guest
    takes them as valid. Empty when the host has no such Python: the guest then compiles on first import."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        python = sys.executable
    else:
        python = shutil.which(f"python{version}")
    if python is None:
        progress.say(f"    no python{version} here: the board compiles its .py files when it first imports them")
        return {}
    jobs = []
    for py in sorted(root.rglob("*.py")):
        if "__pycache__" in py.parts or py.is_symlink():
            continue
        rel = py.relative_to(root)
        guest = os.path.join(dest, str(rel)) if dest else str(rel)
        tag = f"cpython-{version.replace('.', '')}"
        pyc = os.path.join(os.path.dirname(guest), "__pycache__", f"{py.stem}.{tag}.pyc")
        jobs.append((str(py), "/" + guest, str(work / pyc)))
    if not jobs:
        return {}
    subprocess.run([python, "-c", _COMPILE], input=json.dumps(jobs), text=True, check=True)
    out = {}
    for _, _, cfile in jobs:
        p = Path(cfile)
        if p.is_file():
            out[str(p.relative_to(work))] = p.read_bytes()
    return out


def _base_key(target: Target, user: Path, kroot: Path) -> str:
    return hashlib.sha256(json.dumps([_VERSION, user.name, kroot.name, MODULES, sorted(_SKIP_DIRS),
                                      target.python_version]).encode()).hexdigest()[:16]


def _skip_userland(rel: str) -> bool:
    return rel in _SKIP_DIRS or rel.endswith(_SKIP_SUFFIXES) or rel == "packages.json" or \
        rel.split(os.sep)[-1] == "__pycache__"


def _base(target: Target, cache: Path, progress: Progress) -> tuple[Path, Path, str, list[str]]:
    """(base initrd, kernel, kernel release, module paths in load order), the initrd cached by its inputs."""
    user = userland(target, cache, progress)
    kroot = kernel_root(target, cache, progress)
    kernel, release = _kernel(kroot)
    modules = _modules(kroot, release, MODULES)
    out = cache / "board-images" / f"base-{_base_key(target, user, kroot)}.cpio.gz"
    if out.is_file():
        return out, kernel, release, modules
    out.parent.mkdir(parents=True, exist_ok=True)
    with progress.step(f"board initramfs base: {user.name} + kernel {release} (about a minute)"), \
            tempfile.TemporaryDirectory(prefix=".board-base.", dir=out.parent) as work:
        pylib = f"usr/lib/python{target.python_version}"
        pycs = _compile_pycs(user / pylib, pylib, target.python_version, Path(work) / "pyc", progress)
        staged = Path(work) / "base.cpio.gz"
        with open(staged, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
            cpio = _Cpio(io.BufferedWriter(gz, 1 << 20))
            cpio.tree(user, "", skip=_skip_userland)
            for d in _EMPTY_DIRS:
                cpio.dir(d, 0o1777 if d in ("tmp", "var/tmp") else 0o755)
            cpio.chardev("dev/console", 5, 1)
            cpio.chardev("dev/null", 1, 3, 0o666)
            cpio.symlink("etc/mtab", "../proc/self/mounts")  # what mount, df and e2fsck read
            cpio.pycs(pycs)  # the standard library's
            cpio.dir("etc/clawdbot-board")
            cpio.file("etc/clawdbot-board/packages.json", (user / "packages.json").read_bytes())
            if not (user / "usr/bin/python3").exists():  # the python3 package's link; only python3.X is there
                cpio.symlink("usr/bin/python3", f"python{target.python_version}")
            cpio.file("bin/busybox", (kroot / "bin/busybox").read_bytes(), 0o755)
            mdir = kroot / "lib/modules" / release
            seen: set[str] = set()
            for m in modules:
                parts = Path("lib/modules", release, m).parts
                for i in range(2, len(parts)):
                    d = "/".join(parts[:i])
                    if d not in seen:
                        seen.add(d)
                        cpio.dir(d)
                cpio.file(f"lib/modules/{release}/{m}", (mdir / m).read_bytes())
            cpio.trailer()
            cpio.out.flush()
        os.replace(staged, out)
    return out, kernel, release, modules


_INIT = r"""#!/bin/sh
# clawdbot emulated board: PID 1. Brings the board up, then hands the console to the command.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb
bb=/bin/busybox
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys
$bb mount -t devtmpfs devtmpfs /dev
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts devpts /dev/pts
$bb mount -t tmpfs tmpfs /dev/shm
$bb mount -t tmpfs tmpfs /run
while read -r m; do
    $bb insmod "/lib/modules/@RELEASE@/$m" || echo "clawdbot-board: insmod $m failed"
done < /etc/clawdbot-board/modules
# The disk (a virtio device of type 2, block) may show up as /dev/vda a moment after its module loaded.
if $bb grep -qx 0x0002 /sys/bus/virtio/devices/*/device 2>/dev/null; then
    n=0
    while [ ! -b /dev/vda ] && [ $n -lt 50 ]; do $bb sleep 0.1; n=$((n + 1)); done
    [ -b /dev/vda ] || echo "clawdbot-board: a virtio disk is attached but /dev/vda did not appear"
fi
if [ -b /dev/vda ]; then
    # After a power cut the journal needs replaying; -p does that and fixes what is safe to fix unattended.
    fsck="not run (no e2fsck in the userland; ext4 replays its journal at mount)"
    if [ -x /sbin/e2fsck ]; then
        /sbin/e2fsck -p /dev/vda
        fsck=$?
        if [ $fsck -ge 4 ]; then
            echo "clawdbot-board: e2fsck -p /dev/vda: status $fsck; repairing with e2fsck -y"
            /sbin/e2fsck -y /dev/vda
            fsck=$?
        fi
    fi
    $bb mkdir -p @DISK_MOUNT@
    if $bb mount -t ext4 /dev/vda @DISK_MOUNT@; then
        echo "clawdbot-board: /dev/vda (e2fsck status $fsck) mounted at @DISK_MOUNT@"
    else
        echo "clawdbot-board: cannot mount /dev/vda at @DISK_MOUNT@ (e2fsck status $fsck)"
    fi
fi
$bb hostname @HOSTNAME@
$bb ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do $bb sleep 0.1; n=$((n + 1)); done
if [ -e /sys/class/net/eth0 ]; then
    $bb ip link set eth0 up
    $bb ip addr add @IP@ dev eth0
    $bb ip route add default via @GATEWAY@
else
    echo "clawdbot-board: no eth0 (no virtio-net device?)"
fi
@STTY@
# Kernel messages from here on would garble the command's console traffic; they stay in dmesg.
echo 1 > /proc/sys/kernel/printk
cd /root
echo "@MARKER@ after $($bb cut -d' ' -f1 /proc/uptime) s"
/bin/sh /etc/clawdbot-board/command.sh </dev/ttyAMA0 >/dev/ttyAMA0 2>&1
echo "clawdbot-board: command exited with status $?; powering off"
$bb sync
$bb umount @DISK_MOUNT@ 2>/dev/null  # busy if the command left children behind: the sync covered it
$bb poweroff -f
"""


def _hash_extra(extra: Mapping[str, ExtraFile]) -> list:
    out = []
    for guest, src in sorted(extra.items()):
        h = hashlib.sha256()
        if isinstance(src, (bytes, bytearray)):
            h.update(bytes(src))
        else:
            p = Path(src)
            if p.is_dir():
                for f in sorted(p.rglob("*")):
                    h.update(str(f.relative_to(p)).encode() + b"\0")
                    if f.is_file() and not f.is_symlink():
                        h.update(f.read_bytes())
                        h.update(b"%o" % stat.S_IMODE(f.stat().st_mode))
            else:
                h.update(p.read_bytes())
                h.update(b"%o" % stat.S_IMODE(p.stat().st_mode))
        out.append([guest, h.hexdigest()])
    return out


def build_image(target: Target, cache: Path, progress: Progress | None = None,
                extra_files: Mapping[str, ExtraFile] | None = None, *, command: Sequence[str],
                raw_console: bool = True, compile_extra: bool = True) -> Path:
    """The image directory (vmlinuz, initrd.img, image.json) that boots `target`'s userland plus `extra_files`
    (guest path -> bytes, or a host file or directory to copy) and runs `command` on the serial console.

    raw_console puts the console in raw mode without echo (a byte pipe, as a protocol over the serial link
    wants); False leaves the kernel's cooked tty. compile_extra precompiles the .py files of extra
    directories (a numpy tree imports in seconds instead of compiling itself on every boot)."""
    progress = progress or Progress()
    _check_target(target)
    if not command:
        raise BoardError("build_image needs a command to run on the board's console")
    extra = dict(extra_files or {})
    for guest, src in extra.items():
        if not guest.startswith("/") or ".." in Path(guest).parts:
            raise BoardError(f"extra_files: {guest!r} is not an absolute guest path")
        if not isinstance(src, (bytes, bytearray, Path)):
            raise BoardError(f"extra_files[{guest!r}]: give bytes (the contents) or a Path (a host file or "
                             f"directory), not {type(src).__name__}")
        if isinstance(src, Path) and not src.exists():
            raise BoardError(f"extra_files[{guest!r}]: {src} does not exist")
    base, kernel, release, modules = _base(target, cache, progress)
    init = (_INIT.replace("@RELEASE@", release).replace("@IP@", GUEST_IP).replace("@GATEWAY@", GUEST_GATEWAY)
            .replace("@MARKER@", BOOT_MARKER).replace("@HOSTNAME@", target.name)
            .replace("@DISK_MOUNT@", DISK_MOUNT)
            .replace("@STTY@", "stty -F /dev/ttyAMA0 raw -echo" if raw_console else "stty -F /dev/ttyAMA0 sane"))
    script = "exec " + shlex.join(command) + "\n"
    key = hashlib.sha256(json.dumps([_VERSION, base.name, init, script, compile_extra,
                                     _hash_extra(extra)]).encode()).hexdigest()[:16]
    dest = cache / "board-images" / f"{target.name}-{key}"
    if (dest / "image.json").is_file():
        return dest
    with progress.step(f"board image {dest.name}"):
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        tmp.chmod(0o755)
        try:
            overlay = io.BytesIO()
            with gzip.GzipFile(fileobj=overlay, mode="wb", compresslevel=6, mtime=0) as gz:
                cpio = _Cpio(gz)
                cpio.file("init", init.encode(), 0o755)
                cpio.dir("etc/clawdbot-board")
                cpio.file("etc/clawdbot-board/modules", "".join(m + "\n" for m in modules).encode())
                cpio.file("etc/clawdbot-board/command.sh", script.encode(), 0o755)
                cpio.file("etc/hostname", f"{target.name}\n".encode())
                cpio.file("etc/resolv.conf", f"nameserver {GUEST_DNS}\n".encode())
                made: set[str] = set()
                for guest, src in sorted(extra.items()):
                    rel = guest.lstrip("/")
                    parts = Path(rel).parts
                    for i in range(1, len(parts)):
                        d = "/".join(parts[:i])
                        if d not in made:
                            made.add(d)
                            cpio.dir(d)
                    if isinstance(src, (bytes, bytearray)):
                        cpio.file(rel, bytes(src), 0o755 if bytes(src).startswith(b"#!") else 0o644)
                    elif Path(src).is_dir():
                        cpio.dir(rel)
                        pycs = _compile_pycs(Path(src), rel, target.python_version, tmp / "pyc", progress) \
                            if compile_extra else {}
                        cpio.tree(Path(src), rel, skip=lambda r: r.split(os.sep)[-1] == "__pycache__")
                        cpio.pycs(pycs)
                    else:
                        p = Path(src)
                        cpio.file(rel, p.read_bytes(), stat.S_IMODE(p.stat().st_mode), p.stat().st_mtime)
                cpio.trailer()
            shutil.rmtree(tmp / "pyc", ignore_errors=True)
            # The kernel unpacks concatenated archives in order; the overlay's files replace the base's.
            with open(tmp / "initrd.img", "wb") as out, open(base, "rb") as b:
                shutil.copyfileobj(b, out, 1 << 20)
                out.write(overlay.getvalue())
            try:
                os.link(kernel, tmp / "vmlinuz")  # the kernel sysroot is in the same cache: no 31 MiB copy
            except OSError:
                shutil.copyfile(kernel, tmp / "vmlinuz")
            (tmp / "image.json").write_text(json.dumps({
                "target": target.name, "kernel": release, "kernel_package": _kernel_package(target),
                "base": base.name, "modules": modules, "command": list(command), "extra_files": sorted(extra),
                "initrd_bytes": (tmp / "initrd.img").stat().st_size,
            }, indent=1))
            try:
                os.rename(tmp, dest)
            except OSError:
                if not (dest / "image.json").is_file():
                    raise
                shutil.rmtree(tmp)  # a concurrent build of the same inputs finished first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


# -- the disk -------------------------------------------------------------------------------------------------

# Pinned features instead of the host's mke2fs.conf: a newer host's defaults (orphan_file, ...) could be
# unknown to the guest's e2fsck or kernel. These are ext4's defaults since e2fsprogs 1.43.
_MKE2FS_CONF = """[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	blocksize = 4096
	inode_size = 256
	inode_ratio = 16384
[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
	}
"""
MIN_DISK_MIB = 16


def make_disk(path: Path, size_mib: int, files: Mapping[str, ExtraFile] | None = None, *,
              label: str = "clawdbot") -> Path:
    """A raw disk image of size_mib MiB (sparse where the host allows) holding one ext4 file system, no
    partition table, with `files` in it: path relative to the file system's root (DISK_MOUNT on the board)
    -> bytes, or a host file or directory to copy. Written staged-then-renamed, so `path` is complete or
    absent. Made by mkfs.ext4 -d (e2fsprogs >= 1.43): neither root nor a loop device is needed."""
    path = Path(path)
    if not isinstance(size_mib, int) or size_mib < MIN_DISK_MIB:
        raise BoardError(f"make_disk {path}: size_mib must be an int of at least {MIN_DISK_MIB} (ext4 and its "
                         f"journal need room), not {size_mib!r}")
    mkfs = shutil.which("mkfs.ext4") or next((p for p in ("/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4")
                                              if os.access(p, os.X_OK)), None)
    if mkfs is None:
        raise BoardError("mkfs.ext4 not found: apt-get install e2fsprogs (or `invoke setup`)")
    files = dict(files or {})
    for rel, src in files.items():
        if not isinstance(rel, str) or not rel or rel.startswith("/") or ".." in Path(rel).parts:
            raise BoardError(f"make_disk files: {rel!r} is not a path relative to the disk's root")
        if not isinstance(src, (bytes, bytearray, Path)):
            raise BoardError(f"make_disk files[{rel!r}]: give bytes (the contents) or a Path (a host file or "
                             f"directory), not {type(src).__name__}")
        if isinstance(src, Path) and not src.exists():
            raise BoardError(f"make_disk files[{rel!r}]: {src} does not exist")
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.tmp")
    with tempfile.TemporaryDirectory(prefix=".disk-", dir=path.parent) as work:
        tree = Path(work) / "root"
        tree.mkdir(mode=0o755)
        tree.chmod(0o755)  # the file system's root takes this directory's mode
        for rel, src in sorted(files.items()):
            dest = tree / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, (bytes, bytearray)):
                dest.write_bytes(bytes(src))
                dest.chmod(0o755 if bytes(src).startswith(b"#!") else 0o644)
            elif src.is_dir():
                shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(src, dest)
        conf = Path(work) / "mke2fs.conf"
        conf.write_text(_MKE2FS_CONF)
        staged.unlink(missing_ok=True)
        with open(staged, "wb") as f:
            f.truncate(size_mib << 20)
        argv = [mkfs, "-F", "-q", "-t", "ext4", "-L", label, "-m", "0",
                # Initialise inode tables and journal here, not by the guest's ext4lazyinit under TCG.
                "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", str(tree), str(staged)]
        try:
            done = subprocess.run(argv, env={**os.environ, "MKE2FS_CONFIG": str(conf)}, capture_output=True,
                                  text=True, timeout=300, check=False)
        except subprocess.TimeoutExpired:
            staged.unlink(missing_ok=True)
            raise BoardError(f"make_disk {path}: mkfs.ext4 took more than 300 s") from None
        if done.returncode != 0:
            staged.unlink(missing_ok=True)
            why = (done.stderr.strip() or done.stdout.strip())[-2000:]
            raise BoardError(f"make_disk {path}: mkfs.ext4 failed (exit {done.returncode}): {why}")
    os.replace(staged, path)
    return path


# -- the board ------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_LIVE: weakref.WeakSet[EmulatedBoard] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for board in list(_LIVE):
        board.stop()


class EmulatedBoard:
    """qemu-system-aarch64 running an image from build_image, in the background. A context manager: leaving
    the block (also on an exception) stops QEMU; so do interpreter exit and, through PR_SET_PDEATHSIG, the
    death of the process that started it."""

    def __init__(self, target: Target, image: Path, forwards: Mapping[int, int] | None = None,
                 serial_port: int | None = None, *, memory_mib: int | None = None, cpus: int | None = None,
                 log_dir: Path | None = None, kernel_args: str = "", qemu: str = "qemu-system-aarch64",
                 disk: Path | None = None):
        _check_target(target)
        self.target = target
        self.image = Path(image)
        if not (self.image / "image.json").is_file():
            raise BoardError(f"{self.image} is not a board image (no image.json): make one with build_image")
        # The board's persistent disk (make_disk), mounted at DISK_MOUNT; None: all state is in RAM.
        self.disk = Path(disk) if disk is not None else None
        if self.disk is not None:
            if not self.disk.is_file():
                raise BoardError(f"disk {self.disk} does not exist: make one with make_disk")
            extra = json.loads((self.image / "image.json").read_text()).get("extra_files", [])
            hidden = [g for g in extra if g == DISK_MOUNT or g.startswith(DISK_MOUNT + "/")]
            if hidden:
                raise BoardError(f"image {self.image.name} has {', '.join(hidden[:3])}"
                                 f"{' …' if len(hidden) > 3 else ''} under {DISK_MOUNT}, where the disk is "
                                 f"mounted and would hide it: put those on the disk (make_disk's files)")
        self.serial_port = serial_port or free_port()
        # Host port 0 means "any free one"; host_port(guest) says which.
        self.forwards = {(hp or free_port()): gp for hp, gp in (forwards or {}).items()}
        self.memory_mib = memory_mib or int(target.emulation.get("system_memory_mib", 1024))
        # One vCPU by default: on a 2-core host, booting with -smp 2 measured slower (8.5-10.5 s against
        # 6.3-6.8 s to the boot marker), as the vCPU threads compete with QEMU's I/O thread and the test.
        self.cpus = cpus or 1
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="clawdbot-board-"))
        self.console_log = self.log_dir / "console.log"
        self.qemu_log = self.log_dir / "qemu.log"
        self.kernel_args = kernel_args
        self.qemu = qemu
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self._pos = 0

    @property
    def serial_url(self) -> str:
        return f"socket://127.0.0.1:{self.serial_port}"

    def host_port(self, guest_port: int) -> int:
        for hp, gp in self.forwards.items():
            if gp == guest_port:
                return hp
        raise KeyError(f"guest port {guest_port} is not forwarded (forwards: {self.forwards})")

    def argv(self) -> list[str]:
        em = self.target.emulation
        fwd = "".join(f",hostfwd=tcp:127.0.0.1:{hp}-:{gp}" for hp, gp in self.forwards.items())
        append = f"console=ttyAMA0,115200 rdinit=/init panic=-1 {self.kernel_args}".strip()
        return [self.qemu, "-M", str(em["system_machine"]), "-cpu", str(em.get("qemu_cpu", self.target.cpu_model)),
                "-m", str(self.memory_mib), "-smp", str(self.cpus), "-accel", "tcg",
                "-nodefaults", "-display", "none", "-no-reboot",
                "-kernel", str(self.image / "vmlinuz"), "-initrd", str(self.image / "initrd.img"), "-append", append,
                "-chardev", (f"socket,id=s0,host=127.0.0.1,port={self.serial_port},server=on,wait=off,"
                             f"logfile={self.console_log},logappend=off"),
                "-serial", "chardev:s0",
                "-netdev", f"user,id=n0{fwd}", "-device", "virtio-net-pci,netdev=n0,romfile=",
                "-device", "virtio-rng-pci", *self._disk_args()]

    def _disk_args(self) -> list[str]:
        if self.disk is None:
            return []
        # cache=writeback: the guest sees a volatile write cache and its flushes (fsync) reach the image
        # file; QEMU's option syntax escapes a comma in the path by doubling it.
        drive = str(self.disk.resolve()).replace(",", ",,")
        return ["-drive", f"file={drive},format=raw,if=none,id=d0,cache=writeback",
                "-device", "virtio-blk-pci,drive=d0"]

    def start(self) -> EmulatedBoard:
        if self.proc is not None:
            raise BoardError("board already started")
        if shutil.which(self.qemu) is None:
            raise BoardError(f"{self.qemu} not found: apt-get install qemu-system-arm")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.console_log.write_bytes(b"")
        self._pos = 0
        argv = self.argv()
        (self.log_dir / "qemu.argv").write_text(shlex.join(argv) + "\n")
        # setpriv (util-linux) sets PR_SET_PDEATHSIG and execs QEMU, which then gets SIGKILL when the thread
        # that started it dies, however it dies (a test runner killed with -9 leaves no QEMU behind).
        setpriv = shutil.which("setpriv")
        prefix = [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
        with open(self.qemu_log, "wb") as err:
            self.proc = subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started_at = time.monotonic()
        _LIVE.add(self)
        return self

    def console(self) -> str:
        try:
            return self.console_log.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def console_tail(self, lines: int = 25) -> str:
        return "\n".join(self.console().replace("\r", "").splitlines()[-lines:])

    def _explain(self, what: str) -> str:
        qemu = self.qemu_log.read_text(errors="replace").strip() if self.qemu_log.exists() else ""
        return (f"{what}\n--- last console lines ({self.console_log}):\n{self.console_tail()}"
                + (f"\n--- qemu says:\n{qemu[-2000:]}" if qemu else ""))

    def wait_for(self, text: str, timeout: float) -> str:
        """Read the console (from where the last wait_for stopped) until `text` appears; return what was read
        up to and including it. Raises BoardError with the console's last lines on timeout or if QEMU exits."""
        if self.proc is None:
            raise BoardError("board not started")
        deadline = time.monotonic() + timeout
        needle = text.encode()
        while True:
            data = self.console_log.read_bytes() if self.console_log.exists() else b""
            i = data.find(needle, self._pos)
            if i >= 0:
                seen = data[self._pos:i + len(needle)]
                self._pos = i + len(needle)
                return seen.decode("utf-8", "replace")
            if self.proc.poll() is not None:
                raise BoardError(self._explain(f"QEMU exited (status {self.proc.returncode}) before the console "
                                               f"said {text!r}"))
            if time.monotonic() > deadline:
                raise BoardError(self._explain(f"the board's console did not say {text!r} within {timeout:.0f} s"))
            time.sleep(0.1)

    def wait_booted(self, timeout: float = 300) -> float:
        """Wait for /init's BOOT_MARKER line; returns the kernel's uptime (s) when it was printed."""
        self.wait_for(BOOT_MARKER, timeout)
        rest = self.wait_for(" s", 10)
        match = re.match(r" after ([0-9.]+) s", rest)
        if not match:
            raise BoardError(self._explain(f"the boot marker line is garbled: {BOOT_MARKER}{rest!r}"))
        return float(match.group(1))

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM (QEMU shuts down cleanly), then SIGKILL after `timeout` s. Returns QEMU's exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _LIVE.discard(self)
        return proc.returncode

    def kill(self, timeout: float = 10) -> int | None:
        """Pull the plug: SIGKILL to QEMU, which gets no chance to tidy up; the guest's page cache is lost as
        on a real power cut. Returns QEMU's exit status (-9), None if the board was never started."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise BoardError(f"QEMU (pid {proc.pid}) still runs {timeout:.0f} s after SIGKILL") from None
        _LIVE.discard(self)
        return proc.returncode

    def __enter__(self) -> EmulatedBoard:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
