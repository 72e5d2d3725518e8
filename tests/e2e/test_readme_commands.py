"""Every command in README.md's `sh` blocks runs as printed beside a running `scripts/dev` (README, "Quick start").

The README's `scripts/dev` is started as printed (in a throwaway instance directory and port, with none of
Orderhook's variables set and without .venv/bin on PATH, as in a fresh shell); every other line of an `sh`
block then runs in bash from the checkout, after the `eval`/`export` lines printed before it, and must exit
0. A command that cannot run here is listed in SKIPPED with the reason, by its exact text; a listed command
that the README no longer prints fails the suite, so the list cannot go stale.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import schema
from tests.support.procs import ROOT, VENV_BIN, free_port, interrupt_group, wait_until

pytestmark = pytest.mark.e2e

README = ROOT / "README.md"
#: The command that is the running service the others are run beside.
SERVER = "scripts/dev"
#: Lines that set up the reader's shell for the lines after them.
SETUP = ("eval ", "export ")
SKIPPED = {
    "scripts/test": "runs this whole suite (CI runs it as .ci/run): run from inside the suite it would recurse",
    ".venv/bin/honcho start web worker feeds": "runs until stopped, on your own Redis and PostgreSQL; "
    "tests/e2e/test_packaging.py runs it",
    "cp .env.example .env": "would overwrite the checkout's own .env",
    "docker compose up -d --build": "needs a Docker engine that can pull images from Docker Hub (not in CI); "
    "tests/e2e/test_compose.py runs `docker compose config` where Compose is installed",
}


@dataclass(frozen=True)
class Command:
    """One line of an `sh` block: its text as printed, and the setup lines printed before it."""

    text: str
    setup: tuple[str, ...]

    @property
    def name(self) -> str:
        """The command without its trailing comment (how SKIPPED names it)."""
        return " ".join(shlex.split(self.text, comments=True))


def readme_commands(text: str) -> list[Command]:
    """The lines of every ```sh block, in order (blank and comment-only lines left out)."""
    found: list[Command] = []
    setup: list[str] = []
    for block in re.findall(r"^ *```sh\n(.*?)^ *```", text, flags=re.MULTILINE | re.DOTALL):
        for raw in block.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith(SETUP):
                setup.append(line)
                continue
            found.append(Command(line, tuple(setup)))
    return found


COMMANDS = readme_commands(README.read_text())
RUN = [command for command in COMMANDS if command.name != SERVER and command.name not in SKIPPED]


def fresh_shell_environment(instance: Path, port: int) -> dict[str, str]:
    """A new user's shell: no Orderhook variable set, no .venv on PATH; a throwaway instance and port."""
    declared = {setting.name for setting in schema()} | {"ORDERHOOK_DEV_BANNER_SHOWN", "VIRTUAL_ENV"}
    env = {key: value for key, value in os.environ.items() if key not in declared}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != str(VENV_BIN))
    env.update(INSTANCE_PATH=str(instance), PORT=str(port), WEB_CONCURRENCY="1", WORKER_PROCESSES="1")
    return env


@pytest.fixture(scope="module")
def dev(tmp_path_factory) -> Iterator[dict[str, str]]:
    """`scripts/dev`, as printed, until the module's commands have run."""
    workdir = tmp_path_factory.mktemp("readme")
    port = free_port()
    env = fresh_shell_environment(workdir / "instance", port)
    log = workdir / "dev.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen(
            ["bash", "-c", SERVER], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: "Listening at" in log.read_text() and "worker up" in log.read_text(),
            120,
            message=f"scripts/dev did not come up:\n{log.read_text() if log.exists() else ''}",
        )
        yield env
    finally:
        interrupt_group(runner)


def test_the_readme_prints_the_commands_this_test_runs():
    """The extraction finds the documented commands, and every skipped one is still printed."""
    names = {command.name for command in COMMANDS}
    assert SERVER in names
    assert [name for name in SKIPPED if name not in names] == []
    for expected in ("rq info --url $REDIS_URL", "flask --app wsgi prune --dry-run", "scripts/dev sample kite"):
        assert expected in names, sorted(names)
    assert any("redrive" in name and "--since 2026-11-21T09:00" in name for name in names)


@pytest.mark.parametrize(
    "command",
    [pytest.param(command, id=command.name) for command in COMMANDS if command.name in SKIPPED],
)
def test_a_readme_command_that_cannot_run_here_is_skipped_by_name(command):
    pytest.skip(f"{command.name!r}: {SKIPPED[command.name]}")


@pytest.mark.parametrize("command", [pytest.param(command, id=command.name) for command in RUN])
def test_a_readme_command_runs_as_printed_beside_scripts_dev(dev, command):
    script = "\n".join(("set -euo pipefail", *command.setup, command.text))
    done = subprocess.run(
        ["bash", "-c", script], cwd=ROOT, env=dev, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{command.text}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
