"""Accounts in the database: credentials and the day's token encrypted at rest, read back only by the processes.

Every change bumps the row's `revision` (a feeds process restarts that account's connection when it moves);
every new session bumps `session_revision`, so a refusal seen for an old token never marks a newer one
(`mark_session` is conditional on it). A per-account postback token is stored as its SHA-256 only: it is
shown once, when it is made (docs/accounts.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from secrets import token_hex, token_urlsafe
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import InvalidToken, MultiFernet

from app.accounts.expiry import session_expiry
from app.accounts.model import API, Account, Session, SessionState
from app.brokers.registry import BY_NAME
from app.config import Config
from app.crypto import fernet_for
from app.db import accounts, as_utc, utcnow

#: The HKDF label of the accounts' key when it is derived from ADMIN_TOKEN (app/crypto.py).
KEY_LABEL = "orderhook accounts"
ID_PREFIX = "acc_"
#: Bytes of randomness in a per-account postback token (URL-safe base64: 43 characters).
POSTBACK_TOKEN_BYTES = 32
MAX_ERROR_LENGTH = 500


class AccountExists(Exception):
    """That broker already has an account with that client id."""


class AccountNotFound(Exception):
    """No account has that id."""


class CredentialsUnreadable(Exception):
    """A stored credential does not decrypt with the configured key (FEEDS_SECRET_KEY changed?)."""


def token_digest(token: str) -> str:
    """How a postback path token is kept and looked up."""
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


class AccountStore:
    """CRUD over the accounts table; decrypting is explicit (`secrets=True`), so listings never hold a secret."""

    def __init__(self, config: Config, engine: sa.Engine) -> None:
        self.config = config
        self.engine = engine

    # Reading

    def list(self, *, broker: str | None = None, secrets: bool = False) -> list[Account]:
        """Every account (of one broker), oldest first."""
        query = sa.select(accounts).order_by(accounts.c.created_at, accounts.c.id)
        if broker is not None:
            query = query.where(accounts.c.broker == broker)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [self._account(row, secrets=secrets) for row in rows]

    def get(self, account_id: str, *, secrets: bool = False) -> Account:
        """One account by its id; AccountNotFound."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).mappings().first()
        if row is None:
            raise AccountNotFound(account_id)
        return self._account(row, secrets=secrets)

    def revisions(self) -> dict[str, tuple[int, int]]:
        """id -> (revision, session_revision): a cheap poll for what changed."""
        query = sa.select(accounts.c.id, accounts.c.revision, accounts.c.session_revision)
        with self.engine.connect() as conn:
            return {row[0]: (row[1], row[2]) for row in conn.execute(query)}

    def by_postback_token(self, token: str) -> Account | None:
        """The account whose own postback path token this is, or None."""
        digest = token_digest(token)
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.postback_token_hash == digest)).mappings().first()
        if row is None or not hmac.compare_digest(row["postback_token_hash"], digest):
            return None
        return self._account(row, secrets=False)

    # Writing

    def create(
        self,
        broker: str,
        account_id: str,
        *,
        label: str = "",
        credentials: Mapping[str, str] | None = None,
        feed: bool = True,
        reconcile: bool = True,
        session_token: str | None = None,
        expires_at: datetime | None = None,
    ) -> Account:
        """Add an account (its token, when given, is its session from now); AccountExists on a duplicate."""
        now = utcnow()
        values: dict[str, Any] = {
            "id": ID_PREFIX + token_hex(8),
            "broker": broker,
            "account_id": account_id or None,
            "label": label,
            "feed": feed,
            "reconcile": reconcile,
            "credentials": self._encrypt_json(dict(credentials or {})),
            "session_token": None,
            "session_state": SessionState.MISSING,
            "session_revision": 0,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
        }
        if session_token:
            values |= self._session_values(broker, session_token, now, expires_at, revision=1)
        try:
            with self.engine.begin() as conn:
                conn.execute(accounts.insert().values(**values))
        except sa.exc.IntegrityError:
            raise AccountExists(f"{broker} account {account_id} exists") from None
        return self.get(values["id"])

    def update(
        self,
        account_id: str,
        *,
        label: str | None = None,
        credentials: Mapping[str, str | None] | None = None,
        feed: bool | None = None,
        reconcile: bool | None = None,
    ) -> Account:
        """Change what is given; credentials merge key by key (None removes one)."""
        with self.engine.begin() as conn:
            row = self._locked_row(conn, account_id)
            values: dict[str, Any] = {"revision": row["revision"] + 1, "updated_at": utcnow()}
            if label is not None:
                values["label"] = label
            if feed is not None:
                values["feed"] = feed
            if reconcile is not None:
                values["reconcile"] = reconcile
            if credentials:
                merged = self._decrypt_json(row["credentials"])
                for name, value in credentials.items():
                    if value is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = value
                values["credentials"] = self._encrypt_json(merged)
            conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))
        return self.get(account_id)

    def delete(self, account_id: str) -> None:
        """Remove an account (its orders and events stay); AccountNotFound."""
        with self.engine.begin() as conn:
            if conn.execute(accounts.delete().where(accounts.c.id == account_id)).rowcount == 0:
                raise AccountNotFound(account_id)

    def set_session(
        self,
        account_id: str,
        token: str,
        *,
        expires_at: datetime | None = None,
        account_ref: str | None = None,
    ) -> Account:
        """A new day's session (a login or a pasted token): active from now until the broker's expiry (or
        `expires_at`); `account_ref` fills in the broker's client id when the login answer names it."""
        now = utcnow()
        with self.engine.begin() as conn:
            row = self._locked_row(conn, account_id)
            values = self._session_values(row["broker"], token, now, expires_at, revision=row["session_revision"] + 1)
            values |= {"revision": row["revision"] + 1, "updated_at": now, "last_error": None, "last_error_at": None}
            if account_ref and not row["account_id"]:
                values["account_id"] = account_ref
            try:
                conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))
            except sa.exc.IntegrityError:
                raise AccountExists(f"{row['broker']} account {account_ref} exists") from None
        return self.get(account_id)

    def mark_session(self, account_id: str, state: str, error: str, *, session_revision: int) -> bool:
        """The session `session_revision` ended (expired, refused): True when this call changed it (alert once)."""
        now = utcnow()
        statement = (
            accounts.update()
            .where(
                accounts.c.id == account_id,
                accounts.c.session_revision == session_revision,
                accounts.c.session_state == SessionState.ACTIVE,
            )
            .values(
                session_state=state,
                last_error=error[:MAX_ERROR_LENGTH],
                last_error_at=now,
                revision=accounts.c.revision + 1,
                updated_at=now,
            )
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def note_error(self, account_id: str, error: str | None) -> None:
        """Record (or clear, with None) the account's last error; no revision change (nothing to reconnect)."""
        values = {"last_error": (error or "")[:MAX_ERROR_LENGTH] or None, "last_error_at": utcnow() if error else None}
        with self.engine.begin() as conn:
            conn.execute(accounts.update().where(accounts.c.id == account_id).values(**values))

    def new_postback_token(self, account_id: str) -> str:
        """Make (or rotate) the account's own postback path token; the clear token is returned this once."""
        token = token_urlsafe(POSTBACK_TOKEN_BYTES)
        with self.engine.begin() as conn:
            self._locked_row(conn, account_id)
            conn.execute(
                accounts.update()
                .where(accounts.c.id == account_id)
                .values(postback_token_hash=token_digest(token), updated_at=utcnow())
            )
        return token

    def expired_sessions(self, now: datetime | None = None) -> list[Account]:
        """Accounts whose active session's known expiry has passed (to be marked expired and announced)."""
        now = now or utcnow()
        query = sa.select(accounts).where(
            accounts.c.session_state == SessionState.ACTIVE,
            accounts.c.expires_at.is_not(None),
            accounts.c.expires_at <= now,
        )
        with self.engine.connect() as conn:
            return [self._account(row, secrets=False) for row in conn.execute(query).mappings()]

    # Rows and encryption

    def _locked_row(self, conn: sa.Connection, account_id: str) -> Mapping[str, Any]:
        """The row, locked for update where the database can (PostgreSQL); AccountNotFound."""
        query = sa.select(accounts).where(accounts.c.id == account_id)
        if conn.dialect.name != "sqlite":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise AccountNotFound(account_id)
        return row

    def _session_values(
        self, broker: str, token: str, now: datetime, expires_at: datetime | None, *, revision: int
    ) -> dict[str, Any]:
        """The columns of a new active session."""
        spec = BY_NAME[broker].accounts
        expiry = expires_at or (session_expiry(spec, now) if spec else None)
        return {
            "session_token": self._fernet().encrypt(token.encode()),
            "session_state": SessionState.ACTIVE if expiry is None or expiry > now else SessionState.EXPIRED,
            "session_revision": revision,
            "logged_in_at": now,
            "expires_at": expiry,
        }

    def _account(self, row: Mapping[str, Any], *, secrets: bool) -> Account:
        """An Account from a row; clear credentials and token only when asked for."""
        credentials = self._decrypt_json(row["credentials"]) if secrets else dict.fromkeys(self._names(row), "")
        token = ""
        if secrets and row["session_token"] is not None:
            token = self._decrypt(row["session_token"]).decode()
        return Account(
            id=row["id"],
            broker=row["broker"],
            account_id=row["account_id"] or "",
            label=row["label"],
            source=API,
            feed=bool(row["feed"]),
            reconcile=bool(row["reconcile"]),
            credentials=credentials,
            session=Session(
                token=token,
                state=row["session_state"],
                logged_in_at=as_utc(row["logged_in_at"]),
                expires_at=as_utc(row["expires_at"]),
                revision=row["session_revision"],
            ),
            last_error=row["last_error"] or "",
            last_error_at=as_utc(row["last_error_at"]),
            revision=row["revision"],
            has_postback_token=row["postback_token_hash"] is not None,
            created_at=as_utc(row["created_at"]),
        )

    def _names(self, row: Mapping[str, Any]) -> Iterable[str]:
        """The names of the stored credentials (decrypting, but keeping only the keys)."""
        return sorted(self._decrypt_json(row["credentials"]))

    def _fernet(self) -> MultiFernet:
        """The accounts' keys (app/crypto.py)."""
        return fernet_for(self.config, KEY_LABEL, "accounts' credentials")

    def _encrypt_json(self, values: dict[str, Any]) -> bytes:
        """A credentials object, encrypted."""
        return self._fernet().encrypt(json.dumps(values, sort_keys=True).encode())

    def _decrypt_json(self, token: bytes) -> dict[str, str]:
        """A credentials object, decrypted."""
        return json.loads(self._decrypt(token))

    def _decrypt(self, token: bytes) -> bytes:
        """Decrypt one stored value; CredentialsUnreadable when the key does not open it."""
        try:
            return self._fernet().decrypt(bytes(token))
        except InvalidToken:
            raise CredentialsUnreadable(
                "a stored account credential does not decrypt with FEEDS_SECRET_KEY (was the key changed?); "
                "give the account's credentials again"
            ) from None
