"""Webhook and approval auth: the two schemes Alertmanager can send (bearer, basic).

The webhook (``webhook.auth``) and approvals (``approvals.auth``) have separate
credentials; :func:`load_approval_credentials` refuses one that equals the webhook's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from pathlib import Path

from aiopsd.config import Settings, WebhookAuth
from aiopsd.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    bearer: str | None
    basic_user: str | None
    basic_password: str | None

    @property
    def required(self) -> bool:
        return bool(self.bearer or self.basic_user)

    def check(self, header: str | None) -> bool:
        if not self.required:
            return True
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and self.bearer:
            return hmac.compare_digest(value.strip().encode(), self.bearer.encode())
        if scheme.lower() == "basic" and self.basic_user and self.basic_password is not None:
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False
            return hmac.compare_digest(user.encode(), self.basic_user.encode()) & hmac.compare_digest(
                password.encode(), self.basic_password.encode()
            )
        return False


def _read_secret(path: Path, field: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}", field=field) from None
    if not value:
        raise ConfigError(f"secret file {path} is empty", field=field)
    return value


def load_credentials(auth: WebhookAuth, section: str = "webhook.auth") -> Credentials:
    bearer = auth.bearer_token
    if auth.bearer_token_file is not None:
        bearer = _read_secret(auth.bearer_token_file, f"{section}.bearer_token_file")
    password = None
    if auth.basic_password_file is not None:
        password = _read_secret(auth.basic_password_file, f"{section}.basic_password_file")
    if auth.basic_username and password is None:
        raise ConfigError("basic_username needs basic_password_file", field=section)
    return Credentials(bearer=bearer, basic_user=auth.basic_username, basic_password=password)


def load_approval_credentials(settings: Settings) -> Credentials:
    """``approvals.auth``; unset means HTTP approvals are refused (403), never the webhook's token."""
    approvals = load_credentials(settings.approvals.auth, "approvals.auth")
    webhook = load_credentials(settings.webhook.auth)
    if approvals.bearer and approvals.bearer == webhook.bearer:
        raise ConfigError(
            "approvals.auth bearer token must differ from webhook.auth's: whoever can send "
            "alerts must not be able to approve the runs they cause",
            field="approvals.auth",
        )
    if approvals.basic_user and (approvals.basic_user, approvals.basic_password) == (
        webhook.basic_user,
        webhook.basic_password,
    ):
        raise ConfigError("approvals.auth basic credentials must differ from webhook.auth's", field="approvals.auth")
    return approvals
