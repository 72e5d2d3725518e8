"""Flask CLI commands (`flask --app wsgi <command>`) and `python -m app.cli db-upgrade`."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app

from app.config import load_config
from app.db import make_engine, upgrade
from app.delivery import enable_consumer, failed_ids, redrive_many
from app.retention import prune


class IsoTime(click.ParamType):
    """An ISO 8601 time as the admin API reads it (docs/api.md): without a zone it is UTC; `Z` and offsets work."""

    name = "time"
    EXAMPLES = "2026-11-21T09:00 (UTC), 2026-11-21T09:00Z or 2026-11-21T14:30+05:30 (IST)"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        """The time as an aware UTC datetime; a clear usage error otherwise."""
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if not text.isascii():
                raise ValueError
            moment = datetime.fromisoformat(text)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: a time before year 1 once moved to UTC
            self.fail(f"{value!r} is not an ISO 8601 time; write e.g. {self.EXAMPLES}", param, ctx)


ISO_TIME = IsoTime()


def register_cli(app: Flask) -> None:
    """Attach the commands to the app."""
    _register_prune(app)

    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply database migrations (Alembic) up to the latest revision."""
        upgrade(current_app.extensions["orderhook"].config.database_url)
        click.echo("database is at the latest revision")

    @app.cli.command("redrive")
    @click.option("--consumer", "consumer_url", help="Only deliveries to this consumer URL.")
    @click.option(
        "--since",
        type=ISO_TIME,
        help=f"Only deliveries created at or after this time; no zone = UTC ({IsoTime.EXAMPLES}).",
    )
    @click.option("--until", type=ISO_TIME, help="Only deliveries created before this time (no zone = UTC).")
    @click.option("--dry-run", is_flag=True, help="Count what would be redriven, change nothing.")
    def redrive_command(consumer_url: str | None, since: datetime | None, until: datetime | None, dry_run: bool):
        """Redrive failed (dead-lettered) deliveries of a consumer and/or a time range."""
        services = current_app.extensions["orderhook"]
        if not (consumer_url or since or until):
            raise click.UsageError("name --consumer and/or --since/--until (redriving everything needs --since)")
        if since and until and since >= until:
            raise click.UsageError(
                f"--since ({since:%Y-%m-%dT%H:%M}Z) must be before --until ({until:%Y-%m-%dT%H:%M}Z)"
            )
        ids = failed_ids(services.engine, consumer_url, since, until)
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


def _register_prune(app: Flask) -> None:
    """`flask --app wsgi prune [--dry-run] [--days N]`: retention by hand (the worker runs it periodically)."""

    @app.cli.command("prune")
    @click.option("--days", type=click.IntRange(min=1), help="Keep this many days (default RETENTION_DAYS).")
    @click.option("--dry-run", is_flag=True, help="Count what would be removed, change nothing.")
    def prune_command(days: int | None, dry_run: bool) -> None:
        """Remove raw postbacks, events, finished deliveries and idle orders older than the retention."""
        services = current_app.extensions["orderhook"]
        click.echo(run_prune(services.engine, days or services.config.retention_days, dry_run))


def run_prune(engine: sa.Engine, days: int, dry_run: bool) -> str:
    """Prune (or count) and say what was (or would be) removed."""
    if days <= 0:
        return "RETENTION_DAYS is 0: everything is kept (pass --days N to prune anyway)"
    counts = prune(engine, days, dry_run=dry_run)
    what = ", ".join(f"{count} {kind}" for kind, count in counts.items())
    return f"{'would remove' if dry_run else 'removed'} (older than {days} days): {what}"


def main(argv: list[str]) -> int:
    """`python -m app.cli db-upgrade | prune [--dry-run] [--days N]` without building the web app."""
    parser = argparse.ArgumentParser(prog="python -m app.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("db-upgrade", help="apply database migrations (the Procfile release phase)")
    prune_parser = commands.add_parser("prune", help="retention: remove rows older than RETENTION_DAYS")
    prune_parser.add_argument("--dry-run", action="store_true", help="count what would be removed, change nothing")
    prune_parser.add_argument("--days", type=int, help="keep this many days (default RETENTION_DAYS)")
    args = parser.parse_args(argv[1:])
    config = load_config()
    if args.command == "db-upgrade":
        upgrade(config.database_url)
        print("database is at the latest revision")
        return 0
    if args.days is not None and args.days < 1:
        parser.error("--days must be 1 or more")
    engine = make_engine(config.database_url)
    try:
        print(run_prune(engine, args.days or config.retention_days, args.dry_run))
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
