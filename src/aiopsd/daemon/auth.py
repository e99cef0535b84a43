"""Webhook and approval auth: the two schemes Alertmanager can send (bearer, basic)."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from pathlib import Path

from aiopsd.config import WebhookAuth
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
            return (hmac.compare_digest(user.encode(), self.basic_user.encode())
                    & hmac.compare_digest(password.encode(), self.basic_password.encode()))
        return False


def _read_secret(path: Path, field: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read secret file {path}: {exc.strerror}", field=field) from None
    if not value:
        raise ConfigError(f"secret file {path} is empty", field=field)
    return value


def load_credentials(auth: WebhookAuth) -> Credentials:
    bearer = auth.bearer_token
    if auth.bearer_token_file is not None:
        bearer = _read_secret(auth.bearer_token_file, "webhook.auth.bearer_token_file")
    password = None
    if auth.basic_password_file is not None:
        password = _read_secret(auth.basic_password_file, "webhook.auth.basic_password_file")
    if auth.basic_username and password is None:
        raise ConfigError("basic_username needs basic_password_file", field="webhook.auth")
    return Credentials(bearer=bearer, basic_user=auth.basic_username, basic_password=password)
