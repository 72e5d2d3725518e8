"""`.env.example` documents exactly the declared settings (app/config.py, the broker specs), with their defaults."""

from __future__ import annotations

import json
import re

import pytest

from app.config import schema
from tests.support.env import ROOT

EXAMPLE = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))
DECLARED = {setting.name: setting for setting in schema()}


def test_every_variable_is_declared_once():
    names = [setting.name for setting in schema()]
    assert len(names) == len(set(names)), sorted({name for name in names if names.count(name) > 1})


def test_every_example_variable_is_declared():
    assert [name for name in EXAMPLE if name not in DECLARED] == []


def test_every_declared_variable_is_in_the_example():
    documented = [name for name, setting in DECLARED.items() if setting.documented]
    assert [name for name in documented if name not in EXAMPLE] == []


@pytest.mark.parametrize("name", [name for name, value in EXAMPLE.items() if value])
def test_example_values_are_the_declared_defaults(name):
    """A value shown in .env.example is the default: copying the file changes nothing."""
    assert EXAMPLE[name] == DECLARED[name].default


def test_declared_defaults_parse_and_every_setting_has_a_doc_line():
    for setting in DECLARED.values():
        assert setting.doc, setting.name
        setting.default_value()


def test_the_heroku_manifest_names_declared_variables():
    manifest = json.loads((ROOT / "app.json").read_text())
    assert [name for name in manifest["env"] if name not in DECLARED] == []
