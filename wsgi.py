"""gunicorn entry point: `gunicorn wsgi:app`; importing it checks the configuration first."""

from __future__ import annotations

from app import create_app

app = create_app()
