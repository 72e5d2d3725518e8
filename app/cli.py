"""Flask CLI commands (`flask --app wsgi <command>`) and `python -m app.cli db-upgrade`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup

from app.accounts.directory import all_accounts, find_account
from app.accounts.model import SESSION_CREDENTIAL, Account
from app.accounts.store import AccountExists, AccountNotFound, CredentialsUnreadable
from app.api.account_input import BadInput, account_spec, new_account, parse_expiry, secret_value, store_new_account
from app.api.accounts import (
    exists_message,
    live_view,
    postback_refusal,
    postback_url,
    read_only_refusal,
    unreconcilable,
)
from app.config import load_config
from app.consumers.input import BadInput as BadConsumer
from app.consumers.input import consumer_change, new_consumer
from app.consumers.model import HTTP, Consumer
from app.consumers.probe import last_test, request_test
from app.consumers.replay import TooMany, replay
from app.consumers.secrets import SecretUnreadable
from app.consumers.store import ConsumerNotFound, ConsumerStore, ReadOnly, consumer_views
from app.crypto import SecretKeyUnavailable
from app.db import make_engine, upgrade
from app.delivery import enable_consumer, failed_ids, of_removed_consumers, redrive_many
from app.reconcile import request_reconcile
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
    app.cli.add_command(accounts_group)
    app.cli.add_command(consumers_group)

    @app.cli.command("db-upgrade")
    def db_upgrade() -> None:
        """Apply database migrations (Alembic) up to the latest revision."""
        upgrade(current_app.extensions["orderhook"].config.database_url)
        click.echo("database is at the latest revision")

    @app.cli.command("redrive")
    @click.option("--consumer", "consumer_url", help="Only deliveries to this consumer (its id or URL).")
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
        found = failed_ids(services.engine, consumer_url, since, until)
        skip = of_removed_consumers(services.engine, found)
        ids = [number for number in found if number not in skip]
        if consumer_url and skip and not ids:
            raise click.ClickException(f"consumer {consumer_url} was removed; its deliveries cannot be retried")
        skipped = f" ({len(skip)} of removed consumers skipped)" if skip else ""
        if dry_run:
            click.echo(f"{len(ids)} failed deliveries would be redriven{skipped}")
            return
        done = redrive_many(services.engine, services.redis, ids)
        click.echo(f"redrove {done} failed deliveries{skipped}")

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


# `flask --app wsgi accounts ...`: the accounts added as data, as /api/accounts manages them (docs/accounts.md
# "API"). Secrets are read from a hidden prompt or, with --stdin, from standard input; never echoed or shown.

#: The columns of `accounts list`: (header, the view's value).
ACCOUNT_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("id", lambda v: v["id"]),
    ("broker", lambda v: v["broker"]),
    ("account_id", lambda v: v["account_id"]),
    ("label", lambda v: v["label"]),
    ("source", lambda v: v["source"]),
    ("feed", lambda v: "on" if v["feed"] else "off"),
    ("reconcile", lambda v: "on" if v["reconcile"] else "off"),
    ("session", lambda v: v["session"]["state"]),
    ("expires_at", lambda v: v["session"]["expires_at"]),
    ("feed_state", lambda v: v["feed_state"]),
    ("last_message_at", lambda v: v["last_message_at"]),
    ("last_reconcile", lambda v: (v["last_reconcile"] or {}).get("finished_at")),
    ("last_error", lambda v: v["last_error"]),
)


class AccountsGroup(AppGroup):
    """Every accounts command answers a broken FEEDS_SECRET_KEY or a refused input with one line, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; known refusals become click errors."""
        try:
            return super().invoke(ctx)
        except (SecretKeyUnavailable, CredentialsUnreadable, BadInput) as exc:
            raise click.ClickException(str(exc)) from None


@click.group("accounts", cls=AccountsGroup)
def accounts_group() -> None:
    """Accounts: list, add, remove, paste a session, reconcile, a postback URL of its own."""


@accounts_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="The views as JSON (what GET /api/accounts answers).")
def accounts_list(as_json: bool) -> None:
    """Every account, the environment's (read-only) first: session, feed and reconciliation state."""
    services = current_app.extensions["orderhook"]
    views = [live_view(services.redis, a) for a in all_accounts(services.config, services.accounts)]
    if as_json:
        click.echo(json.dumps({"accounts": views}, indent=2))
        return
    click.echo(account_table(views))


def account_table(views: list[dict[str, Any]]) -> str:
    """The views as aligned columns; "-" for nothing."""
    rows = [[header for header, _ in ACCOUNT_COLUMNS]]
    rows += [["-" if (value := get(v)) in (None, "") else str(value) for _, get in ACCOUNT_COLUMNS] for v in views]
    widths = [max(len(row[i]) for row in rows) for i in range(len(ACCOUNT_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


@accounts_group.command("add")
@click.argument("broker")
@click.argument("account_id", required=False, default="")
@click.option("--label", default="", help="A name of your own for it.")
@click.option("--feed/--no-feed", default=True, help="Run its feed (default on).")
@click.option("--reconcile/--no-reconcile", default=True, help="Reconcile it (default on).")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read credentials as name=value lines from standard input.")
def accounts_add(broker: str, account_id: str, label: str, feed: bool, reconcile: bool, from_stdin: bool) -> None:
    """Add an account; its credentials (and the day's access_token, if you have one) are asked for, hidden."""
    services = current_app.extensions["orderhook"]
    spec = account_spec(broker.strip().lower())
    credentials = _stdin_credentials() if from_stdin else _prompt_credentials(spec)
    payload = {
        "broker": broker.strip().lower(),
        "account_id": account_id,
        "label": label,
        "credentials": credentials,
        "feed": feed,
        "reconcile": reconcile,
    }
    wanted = new_account(payload)
    try:
        made = store_new_account(services, wanted)
    except AccountExists as exc:
        raise click.ClickException(exists_message(wanted.broker, wanted.account_id, exc)) from None
    click.echo(f"added {made.id} ({made.describe()}): session {made.session.state}")


def _prompt_credentials(spec: Any) -> dict[str, str]:
    """Ask for each credential (hidden when secret); optional ones and the day's token may be left blank."""
    given: dict[str, str] = {}
    for credential in spec.credentials:
        hint = f" ({credential.doc})" if credential.doc else ""
        value = click.prompt(
            f"{credential.name}{hint}" + ("" if credential.required else " [blank: none]"),
            hide_input=credential.secret,
            default=None if credential.required else "",
            show_default=False,
        )
        if value.strip():
            given[credential.name] = value
    token = click.prompt(
        f"{SESSION_CREDENTIAL} (the day's token) [blank: log in or paste it later]",
        hide_input=True,
        default="",
        show_default=False,
    )
    if token.strip():
        given[SESSION_CREDENTIAL] = token
    return given


def _stdin_credentials() -> dict[str, str]:
    """name=value lines from standard input (blank lines and # comments skipped)."""
    given: dict[str, str] = {}
    for number, line in enumerate(sys.stdin.read().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise click.ClickException(f"line {number} of standard input is not name=value")
        given[name.strip()] = value
    return given


def _data_account(account_id: str) -> Account:
    """An account that may be changed: not the environment's; a click error otherwise."""
    account = _any_account(account_id)
    if account.read_only:
        raise click.ClickException(read_only_refusal(account))
    return account


def _any_account(account_id: str) -> Account:
    """Any account by id; a click error naming it otherwise."""
    services = current_app.extensions["orderhook"]
    try:
        return find_account(services.config, services.accounts, account_id)
    except AccountNotFound:
        raise click.ClickException(f"no account {account_id!r}: `flask accounts list` shows them") from None


@accounts_group.command("remove")
@click.argument("account_id")
@click.option("--yes", is_flag=True, help="Do not ask.")
def accounts_remove(account_id: str, yes: bool) -> None:
    """Remove an account (its feed closes; its orders and events stay)."""
    account = _data_account(account_id)
    if not yes:
        click.confirm(f"remove {account.id} ({account.describe()})?", abort=True)
    current_app.extensions["orderhook"].accounts.delete(account.id)
    click.echo(f"removed {account.id} ({account.describe()})")


@accounts_group.command("session")
@click.argument("account_id")
@click.option("--expires-at", help="When the token ends (ISO 8601, no zone = UTC); default: the broker's rule.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the token from standard input's first line.")
def accounts_session(account_id: str, expires_at: str | None, from_stdin: bool) -> None:
    """Paste the day's token (asked for, hidden): the session from now; the feed reconnects, it is reconciled."""
    services = current_app.extensions["orderhook"]
    account = _data_account(account_id)
    if from_stdin:
        lines = sys.stdin.read().splitlines()
        token = lines[0] if lines else ""
    else:
        token = click.prompt("access token", hide_input=True)
    token = secret_value("access token", token)
    until = parse_expiry(expires_at)
    changed = services.accounts.set_session(account.id, token, expires_at=until)
    request_reconcile(services.redis, changed.reconcile_name, "new session")
    click.echo(f"{changed.id} ({changed.describe()}): session active until {changed.session.expires_at or 'unknown'}")


@accounts_group.command("reconcile")
@click.argument("account_id")
def accounts_reconcile(account_id: str) -> None:
    """Ask the worker to reconcile this account now."""
    account = _any_account(account_id)
    refusal = unreconcilable(account)
    if refusal:
        raise click.ClickException(refusal)
    if not request_reconcile(current_app.extensions["orderhook"].redis, account.reconcile_name, "on demand (CLI)"):
        raise click.ClickException("Redis is not answering, so the request could not be passed on; retry shortly")
    click.echo(f"reconciliation of {account.describe()} requested")


@accounts_group.command("postback-token")
@click.argument("account_id")
def accounts_postback_token(account_id: str) -> None:
    """A postback URL of this account's own (shown this once; running it again rotates it)."""
    services = current_app.extensions["orderhook"]
    account = _any_account(account_id)
    refusal = postback_refusal(account)
    if refusal:
        raise click.ClickException(refusal)
    token = services.accounts.new_postback_token(account.id)
    click.echo(postback_url(services.config, account, token))


#: The columns of `consumers list`: (header, the view's value).
CONSUMER_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("id", lambda v: v["id"]),
    ("type", lambda v: v["type"]),
    ("destination", lambda v: v.get("url") or v.get("stream") or f"{v.get('queue')} {v.get('function')}"),
    ("source", lambda v: v["source"]),
    ("enabled", lambda v: "on" if v["enabled"] else "off"),
    ("filters", lambda v: " ".join(f"{k}={','.join(x)}" for k, x in v["filters"].items() if x)),
    ("delivered", lambda v: v["counts"]["delivered"]),
    ("pending", lambda v: v["counts"]["pending"]),
    ("failed", lambda v: v["counts"]["failed"]),
    ("p50_ms", lambda v: v["latency_ms"]["p50"]),
    ("last_error", lambda v: v["last_error"]),
)


class ConsumersGroup(AppGroup):
    """Every consumers command answers a refusal with one line, exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; known refusals become click errors."""
        try:
            return super().invoke(ctx)
        except (BadConsumer, ReadOnly, TooMany, SecretKeyUnavailable, SecretUnreadable) as exc:
            raise click.ClickException(str(exc)) from None
        except ConsumerNotFound as exc:
            raise click.ClickException(f"no consumer {exc.args[0]!r}: `flask consumers list` shows them") from None


@click.group("consumers", cls=ConsumersGroup)
def consumers_group() -> None:
    """Consumers: list, add, change, remove, rotate a secret, send a test event, replay a window."""


def _consumer_store() -> ConsumerStore:
    """The consumers of the app's services."""
    services = current_app.extensions["orderhook"]
    return ConsumerStore(services.config, services.engine, services.redis)


def _comma_list(value: str | None) -> list[str]:
    """A comma list as a list (nothing: everything)."""
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def _filter_options_given(
    brokers: str | None, accounts: str | None, statuses: str | None, sources: str | None
) -> dict | None:
    """The filter options given as the API's object (only those: a change keeps the others), or None."""
    given = {"brokers": brokers, "accounts": accounts, "statuses": statuses, "sources": sources}
    if all(value is None for value in given.values()):
        return None
    return {name: _comma_list(value) for name, value in given.items() if value is not None}


def filter_options(command):
    """--brokers, --accounts, --statuses, --sources (comma lists; an empty list: every value)."""
    for name, example in (
        ("sources", "postback,websocket"),
        ("statuses", "FILLED,REJECTED"),
        ("accounts", "AB1234"),
        ("brokers", "kite,dhan"),
    ):
        command = click.option(
            f"--{name}",
            help=f"Only these {name}, comma-separated (e.g. {example}); on change, replaces this list only "
            '("" clears it).',
        )(command)
    return command


@consumers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="The views as JSON (what GET /api/consumers answers).")
def consumers_list(as_json: bool) -> None:
    """Every consumer, the environment's (read-only) first, with its delivery counts."""
    services = current_app.extensions["orderhook"]
    views = consumer_views(services.engine, _consumer_store().list(), len(services.config.forward_retry_schedule) + 1)
    if as_json:
        click.echo(json.dumps({"consumers": views}, indent=2))
        return
    rows = [[header for header, _ in CONSUMER_COLUMNS]]
    rows += [["-" if (value := get(v)) in (None, "") else str(value) for _, get in CONSUMER_COLUMNS] for v in views]
    widths = [max(len(row[i]) for row in rows) for i in range(len(CONSUMER_COLUMNS))]
    click.echo("\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows))


@consumers_group.command("add")
@click.argument("kind", metavar="TYPE", type=click.Choice(["http", "rq", "redis_stream"]))
@click.option("--url", help="http: where to POST.")
@click.option("--queue", help="rq: the queue your `rq worker` drains.")
@click.option("--function", help="rq: the dotted path of your function (e.g. strategy.on_order).")
@click.option("--stream", help="redis_stream: the stream to XADD to.")
@click.option("--description", default="", help="What it is for.")
@click.option("--disabled", is_flag=True, help="Add it switched off.")
@filter_options
def consumers_add(kind: str, url, queue, function, stream, description, disabled, brokers, accounts, statuses, sources):
    """Add a consumer; an http consumer's secret is printed this once."""
    payload: dict[str, Any] = {"type": kind, "description": description, "enabled": not disabled}
    for name, value in (("url", url), ("queue", queue), ("function", function), ("stream", stream)):
        if value is not None:
            payload[name] = value
    chosen = _filter_options_given(brokers, accounts, statuses, sources)
    if chosen is not None:
        payload["filters"] = chosen
    made, secret = _consumer_store().create(**new_consumer(payload))
    click.echo(f"added {made.id} ({made.type} {made.shown_target})")
    if made.type == HTTP:
        click.echo(f"secret (shown this once): {secret}")


@consumers_group.command("change")
@click.argument("cid", metavar="ID")
@click.option("--url", help="http: a new URL (pending deliveries go there too).")
@click.option("--description", help="What it is for.")
@click.option("--enable/--disable", "enabled", default=None, help="Switch it on or off.")
@filter_options
def consumers_change(cid: str, url, description, enabled, brokers, accounts, statuses, sources):
    """Change a consumer's URL, description, filters (each list given replaces that list; the others stay) or
    switch."""
    store = _consumer_store()
    consumer = store.writable(cid)
    payload: dict[str, Any] = {}
    if url is not None:
        payload["url"] = url
    if description is not None:
        payload["description"] = description
    if enabled is not None:
        payload["enabled"] = enabled
    chosen = _filter_options_given(brokers, accounts, statuses, sources)
    if chosen is not None:
        payload["filters"] = chosen
    if not payload:
        raise click.UsageError(
            "give at least one of --url, --description, --enable/--disable, --brokers, --accounts, --statuses, "
            "--sources"
        )
    changed = store.update(consumer.id, **consumer_change(consumer, payload))
    click.echo(f"changed {changed.id}: {'on' if changed.sending else 'off'}, {changed.type} {changed.shown_target}")


@consumers_group.command("remove")
@click.argument("cid", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask.")
def consumers_remove(cid: str, yes: bool) -> None:
    """Remove a consumer; its pending deliveries end as failed."""
    store = _consumer_store()
    consumer = store.writable(cid)
    if not yes:
        click.confirm(f"remove {consumer.id} ({consumer.type} {consumer.shown_target})?", abort=True)
    ended = store.delete(consumer.id, current_app.extensions["orderhook"].redis)
    click.echo(f"removed {consumer.id}; {ended} pending deliveries ended as failed")


@consumers_group.command("rotate")
@click.argument("cid", metavar="ID")
def consumers_rotate(cid: str) -> None:
    """A new secret for an http consumer (printed this once); the old one also signs for 24 h."""
    store = _consumer_store()
    consumer: Consumer = store.writable(cid)
    if consumer.type != HTTP:
        raise click.ClickException(f"only http consumers are signed; {consumer.id} is {consumer.type}")
    click.echo(f"new secret (shown this once; the old one also signs for 24 h): {store.rotate(consumer.id)}")


@consumers_group.command("test")
@click.argument("cid", metavar="ID")
@click.option("--wait", default=15.0, show_default=True, help="Seconds to wait for a worker's outcome (0: none).")
def consumers_test(cid: str, wait: float) -> None:
    """Send one test event ("test": true, never stored) and print what the consumer answered."""
    services = current_app.extensions["orderhook"]
    consumer = _consumer_store().get(cid)
    event = request_test(services.redis, consumer)
    click.echo(f"test delivery {event['id']} queued for {consumer.id}")
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        result = last_test(services.redis, consumer.id)
        if result and result.get("event_id") == event["id"]:
            outcome = "delivered" if result.get("ok") else f"failed: {result.get('error')}"
            click.echo(f"{outcome} ({result.get('latency_ms')} ms)")
            if not result.get("ok"):
                raise SystemExit(1)
            return
        time.sleep(0.2)
    if wait:
        raise click.ClickException(f"no worker sent it within {wait:g} s: is the worker running?")


@consumers_group.command("replay")
@click.argument("cid", metavar="ID")
@click.option(
    "--since", required=True, type=ISO_TIME, help=f"Events stored at or after this time ({IsoTime.EXAMPLES})."
)
@click.option("--until", type=ISO_TIME, help="Events stored before this time (no zone = UTC).")
def consumers_replay(cid: str, since: datetime, until: datetime | None) -> None:
    """Deliver every stored event of [since, until) that passes its filters again, with their original ids."""
    services = current_app.extensions["orderhook"]
    consumer = _consumer_store().get(cid)
    if until is not None and until <= since:
        raise click.UsageError("--until must be after --since")
    count = replay(services.engine, services.redis, consumer, since, until)
    click.echo(f"{count} events replayed to {consumer.id}")


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
