# Two images from one file, both running as an unprivileged user (uid 10001) with tuneserve
# installed from a wheel (not editable: the migrations ship inside it):
#   server  the API, no torch (tuneserve[server])                docker build --target server -t tuneserve-server .
#   worker  the worker daemon with torch (CUDA) (tuneserve[worker]) docker build --target worker -t tuneserve-worker .
# Base images are pinned to exact versions; bump them on purpose, not by surprise.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY service ./service
COPY workers ./workers
COPY tuneserve ./tuneserve
COPY migrations ./migrations
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE} AS base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 tuneserve \
 && useradd --system --uid 10001 --gid tuneserve --create-home --home-dir /home/tuneserve tuneserve
WORKDIR /home/tuneserve

FROM base AS server
COPY --from=build /wheels /wheels
RUN pip install "$(ls /wheels/*.whl)[server]" && rm -rf /wheels
USER 10001:10001
EXPOSE 8000
CMD ["tuneserve", "server", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
# PyPI's torch wheels for Linux carry CUDA; the worker needs no other GPU stack. Pinned so a
# rebuild does not silently change the training stack.
ARG TORCH_VERSION=2.5.1
COPY --from=build /wheels /wheels
RUN pip install "torch==${TORCH_VERSION}" \
 && pip install "$(ls /wheels/*.whl)[worker]" && rm -rf /wheels
USER 10001:10001
# Created by the user, so a volume mounted here (compose's `runs`) starts out writable by it.
RUN mkdir -p /home/tuneserve/runs
CMD ["tuneserve", "worker"]
