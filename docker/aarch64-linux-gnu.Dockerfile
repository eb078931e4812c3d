# Cross toolchain image for 64-bit Arm boards (toolchains/aarch64-linux-gnu.toml).
# Built by `invoke toolchain --target rpi4`; no BuildKit features, so the legacy builder works too.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# A locally made base image (debootstrap + docker import) lists only the main suite; when the build passes
# the mirror the host's apt uses, point apt at it with updates and security too.
ARG DEBIAN_MIRROR=
ARG DEBIAN_SECURITY_MIRROR=
ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
RUN if [ -n "$DEBIAN_MIRROR" ]; then \
        rm -f /etc/apt/sources.list.d/debian.sources; \
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" > /etc/apt/sources.list; \
        if [ -n "$DEBIAN_SECURITY_MIRROR" ]; then \
            printf 'deb %s bookworm-security main\n' "$DEBIAN_SECURITY_MIRROR" >> /etc/apt/sources.list; fi; \
    fi \
 && dpkg --add-architecture arm64 \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev:arm64 libpython3.11-dev:arm64 \
        python3 python3-venv file \
 && rm -rf /var/lib/apt/lists/*

# Build tools come from a wheelhouse the build host downloaded (toolchains/build-requirements.txt): PyPI
# may be unreachable from inside the build, and the exact pins keep the generated C byte-identical.
COPY wheels /tmp/wheels
COPY build-requirements.txt /tmp/build-requirements.txt
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/build-requirements.txt \
 && rm -rf /tmp/wheels /root/.cache

# Debian's arm64 sysconfig already names aarch64-linux-gnu-gcc and the aarch64 EXT_SUFFIX; these two
# variables make the image's x86_64 Python read it, which turns setup.py into a cross build.
ENV PATH=/opt/venv/bin:$PATH \
    _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__linux_aarch64-linux-gnu \
    _PYTHON_HOST_PLATFORM=linux-aarch64
