# One image for api, smtp and worker; the compose file picks the command.
# Two stages: the builder installs exactly what uv.lock pins into /app/.venv; the runtime stage gets
# that venv and the code, and neither uv, pip's caches nor the build tools.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
# The venv must live at the path it will run from: its scripts and the editable install name /app.
ENV UV_PROJECT_ENVIRONMENT=/app/.venv UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The same uv as the Makefile's UV_VERSION.
RUN pip install --no-cache-dir uv==0.13.10
WORKDIR /app
# Dependencies first, from the lock alone: this layer is rebuilt only when uv.lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --extra redis --no-install-project
COPY README.md alembic.ini ./
COPY api_service ./api_service
COPY smtp_service ./smtp_service
COPY shared ./shared
RUN uv sync --frozen --no-dev --extra redis

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/app/.venv/bin:$PATH
RUN useradd --system --no-create-home postgate
WORKDIR /app
COPY --from=builder /app/.venv ./.venv
COPY pyproject.toml README.md alembic.ini ./
COPY api_service ./api_service
COPY smtp_service ./smtp_service
COPY shared ./shared
COPY migrations ./migrations
USER postgate
