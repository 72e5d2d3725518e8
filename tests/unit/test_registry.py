"""The broker registry (app/brokers/registry.py) and everything derived from it agree with each other."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from app import config, events
from app.brokers.loader import adapter_classes, connector_classes
from app.brokers.redaction import redact_raw
from app.brokers.registry import SPECS, postback_brokers
from app.brokers.spec import MODIFIED, PATH_TOKEN, SIGNED, URL, status_word
from app.events import OrderStatus
from tests.support.env import POSTBACK_TOKEN
from tests.support.postback_cases import PostbackSecurityCases
from tests.support.samples import POSTBACK_SPECS, postback_samples
from workers.feeds import runner

ROOT = Path(__file__).resolve().parents[2]
BROKER_DOC = (ROOT / "docs" / "brokers.md").read_text()
ENV_EXAMPLE = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", (ROOT / ".env.example").read_text(), flags=re.MULTILINE))


def test_broker_names_agree_everywhere():
    names = tuple(spec.name for spec in SPECS)
    assert len(set(names)) == len(names)
    assert events.BROKERS == names
    assert tuple(adapter_classes()) == names
    assert [name for name, _ in postback_brokers()] == [s.name for s in SPECS if s.postback]


def test_reconcile_is_a_source():
    assert events.SOURCES == ("postback", "websocket", "reconcile")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_adapter_is_its_spec(spec):
    adapter = adapter_classes()[spec.name]
    assert adapter.spec is spec and adapter.name == spec.name
    assert adapter.http_postbacks == (spec.postback is not None)
    assert adapter.path_token == (spec.postback == PATH_TOKEN)
    assert spec.postback in (SIGNED, PATH_TOKEN, None)
    assert adapter.__module__ == f"app.brokers.{spec.name}.adapter"
    if spec.rest:  # a REST client lives in its broker's package too
        assert spec.rest.startswith(f"app.brokers.{spec.name}.rest:"), spec.rest


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_status_maps_are_folded_and_map_to_normalized_statuses(spec):
    for word, status in spec.status_map.items():
        assert status_word(word) == word, f"{spec.name}: {word!r} must be spelled as status_word folds it"
        assert status in (*OrderStatus.ALL, MODIFIED), f"{spec.name}: {word!r} -> {status!r}"
    assert spec.modify_statuses <= set(spec.status_map), spec.modify_statuses - set(spec.status_map)


def test_feed_names_agree_everywhere():
    feeds = tuple(feed.name for spec in SPECS for feed in spec.feeds)
    assert len(set(feeds)) == len(feeds)
    assert config.KNOWN_FEEDS == feeds
    assert tuple(runner.CONNECTORS) == feeds
    assert tuple(connector_classes()) == feeds


@pytest.mark.parametrize(("spec", "feed"), [(s, f) for s in SPECS for f in s.feeds], ids=lambda v: v.name)
def test_each_connector_is_its_feed_spec(spec, feed):
    connector = connector_classes()[feed.name]
    assert connector.spec is feed
    assert connector.name == feed.name and connector.broker == spec.name
    assert (connector.url_variable, connector.required, connector.secret_variables) == (
        feed.url_variable,
        feed.required,
        feed.secret_variables,
    )
    assert connector.__module__.startswith(f"app.brokers.{spec.name}.")
    declared = {var.name: var for var in spec.variables}
    assert feed.url_variable in declared and declared[feed.url_variable].default, feed.url_variable
    for name in feed.required:
        assert name in declared, f"{feed.name} requires {name}, which {spec.name}'s spec does not declare"
    for name in feed.secret_variables:
        assert name in declared and declared[name].secret, f"{name} is secret to the {feed.name} feed, not in the spec"


def test_url_defaults_are_the_specs_real_addresses():
    defaults = {var.name: var.default for spec in SPECS for var in spec.variables if var.kind == URL}
    for name, url in defaults.items():
        assert url.startswith(("wss://", "https://")), name
        if name in ENV_EXAMPLE:
            assert ENV_EXAMPLE[name] == url, f".env.example and the {name} default disagree"
    env = {"APP_ENV": "development"}
    assert config.load_config(env).broker("kite")["KITE_WS_URL"] == "wss://ws.kite.trade"


def test_every_variable_is_named_once():
    names = [var.name for spec in SPECS for var in spec.variables]
    assert len(set(names)) == len(names)


def test_postback_routes_exist_and_others_do_not(client):
    """The registry's routes are the app's: a wrong body is a 4xx other than 404 there, a 404 elsewhere."""
    for broker, route in postback_brokers():
        answer = client.post(route.replace("<POSTBACK_TOKEN>", POSTBACK_TOKEN), data=b"{}")
        assert answer.status_code in (400, 401), (broker, answer.get_json())
    assert client.post("/postbacks/kite/" + POSTBACK_TOKEN, data=b"{}").status_code == 404


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_broker_is_documented(spec):
    section = spec.docs.rpartition("§")[2]
    assert spec.docs.startswith("docs/brokers.md §")
    assert re.search(rf"^## {re.escape(section)}\. ", BROKER_DOC, flags=re.MULTILINE), spec.docs
    for word in spec.status_map:
        if not word.isdigit():
            assert word.lower() in BROKER_DOC.lower().replace("_", " "), f"{spec.name}: {word!r} not in the docs"


def test_only_declared_keys_are_redacted():
    payload = {"checksum": "abc", "status": "COMPLETE", "meta": {"CheckSum": "def"}, "list": [{"check_sum": "x"}]}
    assert redact_raw("kite", payload) == {
        "checksum": "",
        "status": "COMPLETE",
        "meta": {"CheckSum": ""},
        "list": [{"check_sum": ""}],
    }
    assert payload["checksum"] == "abc"  # a copy, never the caller's dict
    assert redact_raw("dhan", payload) is payload
    clean = {"checksum": "", "status": "COMPLETE"}
    assert redact_raw("kite", clean) is clean
    assert redact_raw("kite", b'{"order_id": "1", "checksum" : "abc"}') == b'{"order_id": "1", "checksum" : ""}'
    assert redact_raw("kite", '{"Check-Sum":"abc"}') == '{"Check-Sum":""}'


@pytest.mark.parametrize("spec", POSTBACK_SPECS, ids=lambda s: s.name)
def test_each_postback_broker_is_described_and_its_samples_are_accepted(spec, client):
    """/openapi.json sums the route up, and tests/brokers/<name>/samples.py gives bodies the route takes."""
    assert spec.postback_summary, f"{spec.name}: set postback_summary in its spec (app/api/openapi.py shows it)"
    for payload in postback_samples(spec.name):
        answer = client.post(spec.postback_path(POSTBACK_TOKEN), json=payload)
        assert answer.status_code in (200, 202), (spec.name, answer.get_json())


@pytest.mark.parametrize("spec", POSTBACK_SPECS, ids=lambda s: s.name)
def test_each_postback_broker_runs_the_security_suite(spec):
    """tests/brokers/<name>/test_postbacks.py subclasses tests/support/postback_cases.py for the broker's route."""
    module = importlib.import_module(f"tests.brokers.{spec.name}.test_postbacks")
    suites = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, PostbackSecurityCases) and value.__module__ == module.__name__
    ]
    routes = {suite().valid_request()[0] for suite in suites}
    assert spec.postback_path(POSTBACK_TOKEN) in routes, f"{spec.name}: no security suite posts to its route"


def test_the_readme_table_names_every_broker_with_its_channels():
    """The README's broker table has one row per registered broker, naming its postback route and its feeds."""
    readme = (ROOT / "README.md").read_text()
    rows = {
        match.group(1): line
        for line in readme.splitlines()
        if (match := re.match(r"\| [^|]*\(`([a-z0-9_]+)`", line)) and line.count("|") == 8 and match.group(1) != "name"
    }
    assert list(rows) == [spec.name for spec in SPECS]
    for spec in SPECS:
        row = rows[spec.name]
        if spec.postback_route:
            assert f"`{spec.postback_route.split('<')[0]}" in row, spec.name
        for feed in spec.feeds:
            assert f"`{feed.name}`" in row, (spec.name, feed.name)
        if spec.accounts is not None and spec.accounts.polled:
            assert spec.accounts.poll_variable in row, spec.name
