# Baseline: the seed document's recipe. Poetry 1.8.3 in a builder stage installs from
# pyproject.toml/poetry.lock; production copies the virtual environment and the source.
ARG PYTHON_BASE_IMAGE=python:3.12-slim
FROM ${PYTHON_BASE_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    POETRY_VERSION=1.8.3 \
    POETRY_HOME="/opt/poetry" \
    POETRY_VIRTUALENVS_IN_PROJECT=true \
    POETRY_NO_INTERACTION=1 \
    APP_PATH="/app"

FROM python-base AS builder
RUN pip install "poetry==$POETRY_VERSION"
WORKDIR $APP_PATH
COPY pyproject.toml poetry.lock* ./
RUN poetry install --only=main --no-root

FROM python-base AS production
WORKDIR $APP_PATH
COPY --from=builder /app/.venv /app/.venv
COPY ichrisbirch/ ./ichrisbirch/
ENV PATH=/app/.venv/bin:$PATH
USER 10001
CMD ["gunicorn", "ichrisbirch.wsgi_api:api", "--bind", "0.0.0.0:8000", "--worker-class", "uvicorn_worker.UvicornWorker", "--workers", "4"]
