# Jetson toolchain image (toolchains/jetson-aarch64.toml): the aarch64 cross toolchain plus the CUDA
# headers from Debian's arm64 nvidia-cuda-dev (non-free), so the CUDA HAL driver's native code, written
# against the CUDA driver API (cuda.h), can be compile-checked for aarch64. Only the headers are kept:
# installing the package pulls every CUDA library (a 6 GB image), and the board's own libcuda (JetPack)
# is what such code links at run time. The driver API is versioned per symbol, so code built against
# these 11.8 headers runs on JetPack 6's CUDA 12 driver.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG DEBIAN_MIRROR=
ARG DEBIAN_SECURITY_MIRROR=
ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
RUN if [ -n "$DEBIAN_MIRROR" ]; then \
        rm -f /etc/apt/sources.list.d/debian.sources; \
        printf 'deb %s bookworm main contrib non-free\ndeb %s bookworm-updates main contrib non-free\n' "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" > /etc/apt/sources.list; \
        if [ -n "$DEBIAN_SECURITY_MIRROR" ]; then \
            printf 'deb %s bookworm-security main\n' "$DEBIAN_SECURITY_MIRROR" >> /etc/apt/sources.list; fi; \
    else \
        sed -i 's/^Components: main$/Components: main contrib non-free/' /etc/apt/sources.list.d/debian.sources; \
    fi \
 && dpkg --add-architecture arm64 \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
        gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev:arm64 libpython3.11-dev:arm64 \
        python3 python3-venv file \
 && cd /tmp && apt-get download nvidia-cuda-dev:arm64 \
 && dpkg-deb --fsys-tarfile nvidia-cuda-dev_*_arm64.deb | tar -x -C / ./usr/include \
 && rm -f nvidia-cuda-dev_*_arm64.deb && rm -rf /var/lib/apt/lists/* \
 && test -f /usr/include/cuda.h

COPY wheels /tmp/wheels
COPY build-requirements.txt /tmp/build-requirements.txt
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/build-requirements.txt \
 && rm -rf /tmp/wheels /root/.cache

ENV PATH=/opt/venv/bin:$PATH \
    _PYTHON_SYSCONFIGDATA_NAME=_sysconfigdata__linux_aarch64-linux-gnu \
    _PYTHON_HOST_PLATFORM=linux-aarch64
