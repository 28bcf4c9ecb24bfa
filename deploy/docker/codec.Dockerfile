# syntax=docker/dockerfile:1
# The codec service: decodes and decrypts the CHSI collection code; pyzbar needs the system library libzbar0.
# Only the `codec` extra of pyproject.toml is installed. Build from the repository root:
#   docker build -f deploy/docker/codec.Dockerfile -t registry.example.com/gradphoto/codec:VERSION .

# The base: the pinned public image; a machine without a registry passes an equivalent built from Debian
# packages (--build-arg BASE_IMAGE=..., deploy/docker/local/base.sh; make images does it).
ARG BASE_IMAGE=docker.io/library/python:3.11.11-slim-bookworm
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install ".[codec]"

FROM ${BASE_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends libzbar0 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /tmp --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    ENVIRONMENT=production \
    HTTP_PORT=8181
USER 10001:10001
EXPOSE 8181
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HTTP_PORT', '8181') + '/healthz', timeout=2)"]
CMD ["python", "-m", "services.codec"]
