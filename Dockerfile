# Two images from one file: `server` (no torch) and `worker` (torch with CUDA, for GPU boxes).
FROM python:3.11-slim AS base
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations

FROM base AS server
RUN pip install -e .
EXPOSE 8000
CMD ["tuneserve", "server", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS worker
# PyPI's default torch wheel for Linux carries CUDA; the worker needs no other GPU stack.
RUN pip install torch && pip install -e ".[worker]"
CMD ["tuneserve", "worker"]
