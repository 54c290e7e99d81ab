# One image for api, smtp and worker; the compose file picks the command.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md alembic.ini ./
COPY api_service ./api_service
COPY smtp_service ./smtp_service
COPY shared ./shared
COPY migrations ./migrations
RUN pip install --no-cache-dir ".[redis]" && useradd --system postgate
USER postgate
