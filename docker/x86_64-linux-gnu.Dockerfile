# Native toolchain image for x86_64 edge boxes (toolchains/x86_64-linux-gnu.toml): Debian bookworm's gcc
# and Python 3.11, so the wheel matches the box's glibc and Python rather than the build machine's.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ARG DEBIAN_MIRROR=
ARG DEBIAN_SECURITY_MIRROR=
ENV DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
RUN if [ -n "$DEBIAN_MIRROR" ]; then \
        rm -f /etc/apt/sources.list.d/debian.sources; \
        printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$DEBIAN_MIRROR" "$DEBIAN_MIRROR" > /etc/apt/sources.list; \
        if [ -n "$DEBIAN_SECURITY_MIRROR" ]; then \
            printf 'deb %s bookworm-security main\n' "$DEBIAN_SECURITY_MIRROR" >> /etc/apt/sources.list; fi; \
    fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libpython3.11-dev python3 python3-venv file \
 && rm -rf /var/lib/apt/lists/*

COPY wheels /tmp/wheels
COPY build-requirements.txt /tmp/build-requirements.txt
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /tmp/wheels -r /tmp/build-requirements.txt \
 && rm -rf /tmp/wheels /root/.cache

ENV PATH=/opt/venv/bin:$PATH
