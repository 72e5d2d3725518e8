"""`flask --app wsgi redrive --since/--until`: the README's times are read, without a zone as UTC (docs/api.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from app import create_app
from app.db import deliveries

CONSUMER = "https://consumer.example.com/hooks"
#: Failed deliveries created at these UTC times (08:30, 09:00, 14:30 and 15:00 IST).
CREATED = ("2026-11-21T03:00", "2026-11-21T03:30", "2026-11-21T09:00", "2026-11-21T09:30")


@pytest.fixture
def runner(db_services):
    """A CLI runner over a database holding the four failed deliveries of CREATED."""
    with db_services.engine.begin() as conn:
        for number, created in enumerate(CREATED):
            moment = datetime.fromisoformat(created).replace(tzinfo=UTC)
            conn.execute(
                sa.insert(deliveries).values(
                    event_id=f"evt_{number}",
                    consumer_id="c1",
                    url=CONSUMER,
                    status="failed",
                    attempts=8,
                    created_at=moment,
                    updated_at=moment,
                )
            )
    return create_app(db_services.config, db_services).test_cli_runner()


def dry_run(runner, *args: str):
    """`redrive --consumer CONSUMER <args> --dry-run`."""
    return runner.invoke(args=["redrive", "--consumer", CONSUMER, *args, "--dry-run"])


@pytest.mark.parametrize(
    ("args", "count"),
    [
        (("--since", "2026-11-21T09:00"), 2),  # the README's example, as printed: UTC
        (("--since", "2026-11-21T09:00Z"), 2),
        (("--since", "2026-11-21 09:00"), 2),
        (("--since", "2026-11-21T09:00:00.000000Z"), 2),
        (("--since", "2026-11-21T09:00+05:30"), 3),  # 03:30 UTC
        (("--since", "2026-11-21T14:30+05:30"), 2),
        (("--since", "2026-11-21"), 4),
        (("--since", "2026-11-21T03:00", "--until", "2026-11-21T09:00"), 2),
        (("--until", "2026-11-21T09:00+05:30"), 1),
    ],
)
def test_redrive_reads_iso_times_naive_as_utc(runner, args, count):
    result = dry_run(runner, *args)
    assert result.exit_code == 0, result.output
    assert f"{count} failed deliveries would be redriven" in result.output


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-11-21T25:00",
        "2026-13-01T09:00",
        "2026-11-21T09:00+25:00",
        "\u0662\u0660\u0662\u0666-11-21T09:00",  # Arabic-Indic digits are not ASCII ones
        "0001-01-01T00:00+01:00",  # before year 1 once moved to UTC
        "",
    ],
)
def test_redrive_refuses_a_bad_time_with_a_usage_error_naming_the_form(runner, value):
    result = dry_run(runner, "--since", value)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--since'" in result.output and "ISO 8601" in result.output
    assert "Traceback" not in result.output


def test_redrive_refuses_a_range_that_ends_before_it_starts(runner):
    result = dry_run(runner, "--since", "2026-11-21T09:00", "--until", "2026-11-21T09:00")
    assert result.exit_code == 2 and "must be before --until" in result.output


def test_redrive_help_says_a_time_without_a_zone_is_utc(runner):
    result = runner.invoke(args=["redrive", "--help"])
    assert "no zone = UTC" in result.output and "+05:30" in result.output
