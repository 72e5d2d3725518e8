"""Flask CLI commands (`flask --app wsgi <command>`) and `python -m app.cli db-upgrade`."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app

from app.db import upgrade


def register_cli(app: Flask) -> None:
    """Attach the commands to the app."""

    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply database migrations (Alembic) up to the latest revision."""
        upgrade(current_app.extensions["orderhook"].config.database_url)
        click.echo("database is at the latest revision")


def main(argv: list[str]) -> int:
    """`python -m app.cli db-upgrade`: migrate without building the web app (Procfile release phase)."""
    from app.config import load_config

    if argv[1:] != ["db-upgrade"]:
        print("usage: python -m app.cli db-upgrade", file=sys.stderr)
        return 2
    upgrade(load_config().database_url)
    print("database is at the latest revision")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
