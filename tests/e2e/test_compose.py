"""`docker compose config` accepts docker-compose.yml (docs/deploy.md §3) where Docker Compose v2 is installed.

CI machines have the Docker client without the Compose plugin: there the test says so and is skipped. Where
Compose runs, the file is validated by Compose itself and its resolved form checked: the one-shot release
first, the Procfile's commands, web published on 127.0.0.1 only, Redis with AOF and noeviction.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.support.procs import ROOT, procfile_command

pytestmark = pytest.mark.e2e


def compose_available() -> bool:
    """True when `docker compose` (the v2 plugin) answers."""
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False)
    return done.returncode == 0


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The file as Compose resolves it (no engine needed)."""
    if not compose_available():
        pytest.skip(
            "Docker Compose v2 is not installed here (`docker compose version` fails): the file was not validated"
        )
    done = subprocess.run(
        ["docker", "compose", "-f", "docker-compose.yml", "config", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_validates_the_file_and_runs_release_first(resolved):
    services = resolved["services"]
    assert set(services) == {"release", "web", "worker", "feeds", "redis", "postgres"}
    for name in ("web", "worker", "feeds"):
        assert services[name]["depends_on"]["release"]["condition"] == "service_completed_successfully"
        assert " ".join(services[name]["command"]) == procfile_command(name)
    assert " ".join(services["release"]["command"]) == procfile_command("release")


def test_compose_publishes_web_on_loopback_and_redis_keeps_what_it_took(resolved):
    (port,) = resolved["services"]["web"]["ports"]
    assert port["host_ip"] == "127.0.0.1" and port["target"] == 8000
    command = resolved["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--appendonly") + 1] == "yes"
