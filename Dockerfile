# Offload: one image for the API (`offload serve`), the worker (`offload worker`)
# and the scheduler (`offload scheduler`).
#
# Both stages MUST use the same base image: the venv built in the builder is
# copied as-is, and its `bin/python` is a symlink to the base interpreter
# (/usr/local/bin/python3.11) and its console scripts carry absolute shebangs
# (#!/app/.venv/bin/python). So the venv also keeps the same path, /app/.venv.

# ---------------------------------------------------------------------------
# builder: resolve and install everything into /app/.venv with uv
# ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS builder

ARG UV_VERSION=0.13.9

# uv from PyPI, pinned (no curl installers, no ghcr images).
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# - compile bytecode now: the runtime venv is root-owned and read-only to the app user
# - copy, not hardlink, files out of uv's cache into the venv
# - never let uv download its own Python: the venv must link to the base image's
#   interpreter, which is the one that exists in the runtime stage
# - no cache kept in the layer (only the venv leaves this stage anyway)
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# Dependencies only (cached layer: rebuilt only when the lock or pyproject change).
# --no-dev leaves out the `dev` dependency group (pytest, mypy, ruff, hadolint, ...).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself. --no-editable builds a wheel and installs it into
# site-packages, so the venv does not point back at /app's source tree (which is
# not copied into the runtime stage). .dockerignore keeps tests, caches, .venv,
# .git and local data out of the build context.
COPY . .
RUN uv sync --frozen --no-dev --no-editable

# ---------------------------------------------------------------------------
# runtime: slim image with just the venv, running as a non-root user
# ---------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH="/app/.venv/bin:${PATH}" \
    OFFLOAD_DATA_DIR=/data

# Non-root user with a fixed numeric id, and the data directory it owns.
# The ownership is set before VOLUME so a fresh named volume inherits it.
RUN groupadd --system --gid 10001 offload \
    && useradd --system --no-log-init --uid 10001 --gid offload \
        --create-home --home-dir /home/offload --shell /usr/sbin/nologin offload \
    && mkdir -p /data \
    && chown offload:offload /data

WORKDIR /app

# The venv stays root-owned: the app user can run it but not modify it.
COPY --from=builder /app/.venv /app/.venv

VOLUME ["/data"]

USER 10001:10001

EXPOSE 8000

# For the API (the default command). The worker and scheduler serve no HTTP:
# docker-compose.yml disables this check for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["offload"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
