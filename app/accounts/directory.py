"""Every account the service serves: the environment's read-only ones first, then those added as data."""

from __future__ import annotations

from app.accounts.environment import environment_accounts, is_environment_id
from app.accounts.model import Account
from app.accounts.store import AccountNotFound, AccountStore
from app.config import Config


def all_accounts(config: Config, store: AccountStore, *, secrets: bool = False) -> list[Account]:
    """The environment's accounts and the stored ones (clear credentials only with `secrets`)."""
    return [*environment_accounts(config), *store.list(secrets=secrets)]


def find_account(config: Config, store: AccountStore, account_id: str, *, secrets: bool = False) -> Account:
    """One account by id, whichever kind; AccountNotFound."""
    if is_environment_id(account_id):
        for account in environment_accounts(config):
            if account.id == account_id:
                return account
        raise AccountNotFound(account_id)
    return store.get(account_id, secrets=secrets)
