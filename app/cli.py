"""Flask CLI commands (`flask --app wsgi <command>`) and `python -m app.cli db-upgrade`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
from flask import Flask, current_app

from app.db import upgrade
from app.delivery import enable_consumer, failed_ids, redrive_many


def register_cli(app: Flask) -> None:
    """Attach the commands to the app."""

    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply database migrations (Alembic) up to the latest revision."""
        upgrade(current_app.extensions["orderhook"].config.database_url)
        click.echo("database is at the latest revision")

    @app.cli.command("redrive")
    @click.option("--consumer", "consumer_url", help="Only deliveries to this consumer URL.")
    @click.option("--since", type=click.DateTime(), help="Only deliveries created at or after (UTC).")
    @click.option("--until", type=click.DateTime(), help="Only deliveries created before (UTC).")
    @click.option("--dry-run", is_flag=True, help="Count what would be redriven, change nothing.")
    def redrive_command(consumer_url: str | None, since: datetime | None, until: datetime | None, dry_run: bool):
        """Redrive failed (dead-lettered) deliveries of a consumer and/or a time range."""
        services = current_app.extensions["orderhook"]
        if not (consumer_url or since or until):
            raise click.UsageError("name --consumer and/or --since/--until (redriving everything needs --since)")
        ids = failed_ids(
            services.engine,
            consumer_url,
            since.replace(tzinfo=UTC) if since else None,
            until.replace(tzinfo=UTC) if until else None,
        )
        if dry_run:
            click.echo(f"{len(ids)} failed deliveries would be redriven")
            return
        done = redrive_many(services.engine, services.redis, ids)
        click.echo(f"redrove {done} failed deliveries")

    @app.cli.command("forward-enable")
    @click.argument("url")
    def forward_enable(url: str) -> None:
        """Forward to a consumer again after it was disabled by a 410 Gone."""
        services = current_app.extensions["orderhook"]
        changed = enable_consumer(services.engine, url)
        click.echo(f"consumer {url} enabled" if changed else f"consumer {url} was not disabled")


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
