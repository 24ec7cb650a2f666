# ChampiPy images, built from one Dockerfile:
#   serving (default, last stage): the API with ONNX Runtime, no torch
#       docker build -t champipy .
#   worker: the same plus torch (CPU) for the jobs that train (`champipy worker`)
#       docker build --target worker -t champipy-worker .
#
# BASE_IMAGE must provide python3 (3.11+) with the venv module; everything is installed into
# /opt/venv, so the same steps work on python:3.11-slim and on a plain Debian image with
# python3 and python3-venv (see scripts/check_container.sh, which builds on one made with
# debootstrap). Build with `--format docker` under podman/buildah, or HEALTHCHECK is dropped.
#
# torch comes from TORCH_INDEX_URL (PyTorch's CPU index): PyPI's torch for Linux is the CUDA
# build, several GB. Where that index cannot be reached, point pip at a folder holding the CPU
# wheel: --volume /opt/wheels:/wheels:ro --build-arg PIP_FIND_LINKS=/wheels, and set
# TORCH_INDEX_URL to pip's default index (the +cpu wheel in the folder then wins).

ARG BASE_IMAGE=python:3.11-slim

# --- common ground ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
SHELL ["/bin/sh", "-eu", "-c"]

# --- dependencies, in layers that change only with pyproject.toml ------------------------------
FROM base AS deps
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml ./
# The base dependencies only: no torch in the serving image.
RUN python3 -c 'import tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; open("/tmp/requirements.txt", "w").write("\n".join(project["dependencies"]))' \
 && pip install --requirement /tmp/requirements.txt

FROM deps AS deps-train
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_FIND_LINKS
RUN pip install --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
 && python3 -c 'import tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; open("/tmp/requirements-train.txt", "w").write("\n".join(project["optional-dependencies"]["train"]))' \
 && pip install --requirement /tmp/requirements-train.txt

# --- the package itself ------------------------------------------------------------------------
FROM deps AS build
COPY README.md ./
COPY src ./src
RUN pip install --no-deps . \
 && pip check \
 && python3 -c "import champipy.api.app, champipy.cli, onnxruntime" \
 && ! python3 -c "import torch" 2>/dev/null

FROM deps-train AS build-train
COPY README.md ./
COPY src ./src
RUN pip install --no-deps . \
 && pip check \
 && python3 -c "import champipy.cli, torch, onnx; print('torch', torch.__version__)"

# --- runtime images ----------------------------------------------------------------------------
FROM base AS runtime
# A fixed, numeric id: USER below names it, and a mounted data folder can be chowned to it.
RUN groupadd --system --gid 10001 champipy \
 && useradd --system --uid 10001 --gid champipy --home-dir /data --no-create-home --shell /usr/sbin/nologin champipy \
 && mkdir -p /data \
 && chown champipy:champipy /data
WORKDIR /data
ENV CHAMPIPY_DATA_DIR=/data \
    CHAMPIPY_HOST=0.0.0.0 \
    CHAMPIPY_PORT=8000
VOLUME ["/data"]

FROM runtime AS worker
COPY --from=build-train /opt/venv /opt/venv
USER 10001:10001
CMD ["champipy", "worker"]

# Last, so that a plain `docker build .` gives the serving image.
FROM runtime AS serving
COPY --from=build /opt/venv /opt/venv
# This image cannot train: it serves the version the registry's alias points to.
ENV CHAMPIPY_BOOTSTRAP_MODEL=false
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('CHAMPIPY_PORT', '8000')}/status\", timeout=4)"]
CMD ["champipy", "serve"]
