"""A broker's environment variables as its one read-only account (docs/interface.md "Accounts"), so deployments
configured before accounts were data keep running unchanged."""

from __future__ import annotations

from app.accounts.model import ENVIRONMENT, Account, Session, SessionState
from app.brokers.registry import SPECS
from app.brokers.spec import BrokerSpec
from app.config import Config

ID_PREFIX = "env-"


def environment_accounts(config: Config) -> list[Account]:
    """One account per broker whose account variables are set, in registry order."""
    accounts = []
    for spec in SPECS:
        account = environment_account(config, spec)
        if account is not None:
            accounts.append(account)
    return accounts


def environment_account(config: Config, spec: BrokerSpec) -> Account | None:
    """The broker's environment account, or None when none of its account variables is set."""
    declared = spec.accounts
    if declared is None:
        return None
    variables = config.broker(spec.name)
    credentials = {c.name: variables[c.variable] for c in declared.credentials if c.variable and variables[c.variable]}
    account_id = variables[declared.account_variable] if declared.account_variable else ""
    token = variables[declared.session_variable] if declared.session_variable else ""
    if not (credentials or account_id or token):
        return None
    return Account(
        id=ID_PREFIX + spec.name,
        broker=spec.name,
        account_id=account_id,
        label="from the environment",
        source=ENVIRONMENT,
        feed=any(feed.per_account and feed.name in config.feeds for feed in spec.feeds),
        reconcile=spec.rest is not None,
        credentials=credentials,
        session=Session(token=token, state=SessionState.ACTIVE if token else SessionState.MISSING),
    )


def is_environment_id(account_id: str) -> bool:
    """True for the id of an environment account."""
    return account_id.startswith(ID_PREFIX)
