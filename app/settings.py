"""How settings are declared and read: each environment variable once, typed, through one path (environs).

A setting is a dataclass field made by `setting(name, kind, default, doc)`: its variable, its kind (how
the text is parsed and what a refused value must look like), its default as `.env.example` spells it, a
doc line and whether it is a secret (kept out of repr). `read_group` fills such a dataclass from an
environment, through environs; broker packages declare their variables in their spec (app/brokers/spec.py
`Variable`, with a kind from there) and `read_broker` reads them the same way. A refused value is a
ConfigurationError naming every bad variable and what to set; blank means unset (.env.example leaves most
variables blank). The schema itself (Config and its groups) is app/config.py.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import environs
from marshmallow import ValidationError

from app.brokers import spec as broker_spec
from app.exceptions import ConfigurationError

log = logging.getLogger(__name__)

#: The metadata key under which a dataclass field carries its declaration.
SETTING = "setting"
#: What `MappingEnv` hands the parser for a blank or missing variable: the declared default applies.
_BLANK = object()
_DECIMAL = re.compile(r"[0-9]*\.?[0-9]+")
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Kind:
    """How a variable's text becomes a value: `parse` raises ValueError (optionally saying why) on bad input."""

    parse: Callable[[str], Any]
    #: What a refused value must look like, after the variable's name ("must be a number of seconds ...").
    hint: str


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, kind, default (as .env.example spells it), doc line, secrecy."""

    name: str
    kind: Kind
    default: str = ""
    doc: str = ""
    secret: bool = False
    #: True for a variable a bad value of which is warned about and replaced by the default (the
    #: reconciliation interval, whose tests pin that); every other bad value stops the process.
    lenient: bool = False
    #: False for variables the service sets for its own children (scripts/dev), not for users.
    documented: bool = True

    def default_value(self) -> Any:
        """The typed default."""
        return self.kind.parse(self.default)

    def refusal(self, raw: str, why: str = "") -> str:
        """The sentence naming the variable and what to set; a secret's value is never quoted."""
        message = f"{self.name} {why or self.kind.hint}"
        return message if self.secret else f"{message} (got {raw!r})"

    def parse(self, raw: str) -> Any:
        """The typed value of a non-blank text; ValidationError with the refusal otherwise."""
        try:
            return self.kind.parse(raw)
        except ValueError as exc:
            message = self.refusal(raw, str(exc))
        if self.lenient:
            log.warning("%s; using the default %s", message, self.default)
            return self.default_value()
        raise ValidationError(message)


def setting(
    name: str,
    kind: Kind,
    default: str = "",
    doc: str = "",
    *,
    secret: bool = False,
    lenient: bool = False,
    documented: bool = True,
) -> Any:
    """A dataclass field read from `name`; its default is the parsed `default` text."""
    declared = Setting(name, kind, default, doc, secret, lenient, documented)
    value = declared.default_value()
    hashable = value is None or isinstance(value, (str, int, float, tuple, frozenset, Path))
    initial = {"default": value} if hashable else {"default_factory": declared.default_value}
    return field(**initial, repr=not secret, metadata={SETTING: declared})


# Kinds. Numbers are ASCII decimals: Python's int() and float() also read other scripts' digits, "nan", "1e9".


def _text(raw: str) -> str:
    """Text as given (stripped by the reader)."""
    return raw


def _url(raw: str) -> str:
    """A URL with a scheme and a host, or blank."""
    if raw and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/?#]+\S*", raw):
        raise ValueError
    return raw


def _items(raw: str) -> tuple[str, ...]:
    """Comma- (or semicolon-, or whitespace-) separated list with blanks dropped."""
    return tuple(part for part in re.split(r"[,;\s]+", raw) if part)


def _optional_path(raw: str) -> Path | None:
    """A directory, or None when blank."""
    return Path(raw) if raw else None


def _decimal(raw: str) -> float:
    """A non-negative ASCII decimal."""
    if not _DECIMAL.fullmatch(raw):
        raise ValueError
    return float(raw)


def _time_of_day(raw: str) -> str:
    """HH:MM on a 24-hour clock; `off` is "" (a blank value means the default, as for every setting)."""
    if raw.lower() == "off":
        return ""
    if not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", raw):
        raise ValueError
    return raw


TEXT = Kind(_text, "is not valid")
TIME_OF_DAY = Kind(_time_of_day, "must be a time of day as HH:MM (24-hour clock), or off")
URL = Kind(_url, "must be a URL such as https://host or wss://host")
ITEMS = Kind(_items, "must be a comma-separated list")
OPTIONAL_PATH = Kind(_optional_path, "must be a directory")


def seconds(*, zero: bool = False) -> Kind:
    """The one seconds parser: a finite ASCII decimal, greater than 0 (or 0 too, when `zero`)."""

    def parse(raw: str) -> float:
        """Seconds from text."""
        value = _decimal(raw)
        if value == 0 and not zero:
            raise ValueError
        return value

    return Kind(parse, f"must be a number of seconds{', 0 or more' if zero else ' greater than 0'}")


def positive_number(hint: str) -> Kind:
    """A finite ASCII decimal greater than 0."""

    def parse(raw: str) -> float:
        """A number from text."""
        value = _decimal(raw)
        if value == 0:
            raise ValueError
        return value

    return Kind(parse, hint)


def integer(minimum: int = 0, maximum: int | None = None, *, hint: str = "") -> Kind:
    """An ASCII whole number within [minimum, maximum]."""

    def parse(raw: str) -> int:
        """A whole number from text."""
        if not _DIGITS.fullmatch(raw) or len(raw) > 9:
            raise ValueError
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError
        return value

    bounds = f"{minimum}-{maximum}" if maximum is not None else f"{minimum} or more"
    return Kind(parse, hint or f"must be a whole number, {bounds}")


def choice(*values: str, aliases: Mapping[str, str] | None = None) -> Kind:
    """One of `values` (any case), blank allowed when "" is one; `aliases` map other spellings onto them."""
    spellings = {value: value for value in values} | dict(aliases or {})

    def parse(raw: str) -> str:
        """The canonical spelling."""
        try:
            return spellings[raw.lower()]
        except KeyError:
            raise ValueError from None

    named = " or ".join(repr(value) for value in values if value)
    return Kind(parse, f"must be {named}")


def _pairs(raw: str) -> dict[str, str]:
    """`key:value,key:value` -> {key: value}."""
    pairs: dict[str, str] = {}
    for number, item in enumerate(_items(raw), start=1):
        key, sep, value = item.partition(":")
        if not sep or not key or not value:
            # Only the part before ':' is quoted: an entry without one may be a bare secret.
            where = f"near '{key}:...'" if sep else f"entry {number} has no ':'"
            raise ValueError(f"must look like 'app_id:api_secret,app_id:api_secret' (an entry is incomplete: {where})")
        pairs[key] = value
    return pairs


def _schedule(raw: str) -> tuple[float, ...]:
    """`5,300,1800` -> (5.0, 300.0, 1800.0)."""
    parts = _items(raw)
    if not parts:
        raise ValueError("must list seconds between attempts, e.g. '5,300,1800'")
    try:
        return tuple(_decimal(part) for part in parts)
    except ValueError:
        raise ValueError("must be comma-separated seconds, e.g. '5,300,1800'") from None


PAIRS = Kind(_pairs, "must look like 'key:value,key:value'")
SCHEDULE = Kind(_schedule, "must be comma-separated seconds, e.g. '5,300,1800'")

#: The kinds a broker spec names (app/brokers/spec.py), by name.
BROKER_KINDS: dict[str, Kind] = {
    broker_spec.TEXT: TEXT,
    broker_spec.URL: URL,
    broker_spec.SECONDS: seconds(),
    broker_spec.PAIRS: PAIRS,
}


def broker_kind(variable: broker_spec.Variable) -> Kind:
    """The Kind a broker variable declares (choices and positive numbers carry their own words)."""
    if variable.kind == broker_spec.CHOICE:
        return choice(*variable.choices)
    if variable.kind == broker_spec.NUMBER:
        return positive_number("must be a positive number")
    return BROKER_KINDS[variable.kind]


def broker_setting(variable: broker_spec.Variable) -> Setting:
    """A broker variable as a Setting."""
    return Setting(variable.name, broker_kind(variable), variable.default, variable.doc, variable.secret)


# Reading.


class MappingEnv(environs.Env):
    """environs reading a given mapping (load_config(environ)), not os.environ; blank means unset (.env.example)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(eager=False)
        self.source = environ
        self.add_parser("declared", _parse_declared)

    def _get_value(self, env_key: str, default: Any) -> Any:
        """The variable's stripped value, or the default when it is missing or blank."""
        value = self.source.get(env_key)
        return default if value is None or not str(value).strip() else str(value).strip()

    def read(self, declared: Setting) -> Any:
        """One setting's typed value (None when refused: `checked` raises for it)."""
        return self.declared(declared.name, _BLANK, setting=declared)

    def checked(self) -> None:
        """One ConfigurationError naming every refused variable."""
        try:
            self.seal()
        except environs.EnvValidationError as exc:
            raise ConfigurationError(
                "; ".join(message for messages in exc.error_messages.values() for message in messages)
            ) from None


def _parse_declared(raw: Any, *, setting: Setting) -> Any:
    """environs' parser for a declared setting: the default when blank, else the kind's parse."""
    return setting.default_value() if raw is _BLANK else setting.parse(raw)


def declarations(group: type) -> Iterator[tuple[str, Setting]]:
    """(field name, Setting) of every declared field of a settings dataclass."""
    for item in dataclasses.fields(group):
        if SETTING in item.metadata:
            yield item.name, item.metadata[SETTING]


def read_values(group: type, env: MappingEnv) -> dict[str, Any]:
    """The typed values of a group's declared fields, by field name."""
    return {name: env.read(declared) for name, declared in declarations(group)}


def read_group(group: type, environ: Mapping[str, str]) -> Any:
    """A settings dataclass filled from `environ` alone (processes that read before the app loads)."""
    env = MappingEnv(environ)
    values = read_values(group, env)
    env.checked()
    return group(**values)


class BrokerSettings(Mapping[str, Any]):
    """One broker's declared variables, typed, by variable name; secrets stay out of repr."""

    def __init__(self, broker: str, variables: tuple[broker_spec.Variable, ...], values: Mapping[str, Any]) -> None:
        self.broker = broker
        self._secret = frozenset(variable.name for variable in variables if variable.secret)
        self._values = dict(values)

    def __getitem__(self, name: str) -> Any:
        """A declared variable's value; KeyError for a name the broker's spec does not declare."""
        try:
            return self._values[name]
        except KeyError:
            where = f"app/brokers/{self.broker}/spec.py"
            raise KeyError(f"{name} is not declared in {self.broker}'s spec ({where})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def with_values(self, values: Mapping[str, Any]) -> BrokerSettings:
        """A copy with some values replaced (an account's credentials over the environment's settings)."""
        copy = BrokerSettings.__new__(BrokerSettings)
        copy.broker, copy._secret, copy._values = self.broker, self._secret, {**self._values, **values}
        return copy

    def __repr__(self) -> str:
        shown = {name: ("***" if name in self._secret and value else value) for name, value in self._values.items()}
        return f"BrokerSettings({self.broker!r}, {shown!r})"

    def secrets(self) -> list[str]:
        """The values of the secret variables, piece by piece (for redaction)."""
        return [piece for name in sorted(self._secret) for piece in secret_pieces(self._values[name])]

    def all_set(self, names: tuple[str, ...]) -> bool:
        """True when every named variable has a value."""
        return all(self[name] for name in names)


def secret_pieces(value: Any) -> list[str]:
    """A secret's value as log redaction needs it: the whole, and each comma- or space-separated key of it."""
    if isinstance(value, dict):
        return [str(item) for item in value.values() if item]
    if isinstance(value, tuple):
        return [str(item) for item in value if item]
    text = str(value or "")
    return [piece for piece in dict.fromkeys((text, *_items(text))) if piece]


def read_broker(spec: broker_spec.BrokerSpec, env: MappingEnv) -> BrokerSettings:
    """A broker's variables, read through the same typed path as every other setting."""
    values = {variable.name: env.read(broker_setting(variable)) for variable in spec.variables}
    return BrokerSettings(spec.name, spec.variables, values)
