"""The error tree: postback refusals carry their HTTP status; configuration errors stop the process."""

from __future__ import annotations


class PostbackError(Exception):
    """A postback refused with a status from the contract and a message that says what to fix."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class AccountsUnavailableError(PostbackError):
    """The accounts a postback may belong to cannot be read now (database away): the broker should retry (503)."""

    status_code = 503


class PostbackPayloadError(PostbackError):
    """The body is malformed or does not validate (400)."""

    status_code = 400


class PostbackVerificationError(PostbackError):
    """The checksum is missing (401) or does not match (403)."""

    status_code = 403


class UnknownTokenError(PostbackError):
    """The secret path token is not ours (404): say nothing more."""

    status_code = 404


class NotDurableError(PostbackError):
    """The update could not be kept durably (503), so the sender should retry."""

    status_code = 503


class ConfigurationError(SystemExit):
    """Bad configuration: a SystemExit so that `import wsgi`, gunicorn and workers stop non-zero."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
