"""SMTP email through :mod:`smtplib`: plain text, one message per notification.

Header values are set through :class:`email.message.EmailMessage`, which refuses
CR/LF in them, and the subject is flattened to one line first, so a label cannot
add a header or a recipient. The password is read from ``password_file``.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import threading
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from aiopsd.actions.notify.base import Attempt, ChannelConfig, Delivery, Notification, read_secret, with_retries


def one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def message(note: Notification, *, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage(policy=policy.SMTP)
    msg["Subject"] = one_line(f"[aiopsd {note.severity}] {note.title}")
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain="aiopsd")
    labels = note.finding.get("labels") or {}
    lines = [note.message, "", f"rule: {note.rule}", f"event: {note.event}", f"dedup key: {note.dedup_key}"]
    lines += (
        [
            f"finding: {note.finding.get('id', '')} ({note.finding.get('kind', '')} from "
            f"{note.finding.get('source', '')})"
        ]
        if note.finding
        else []
    )
    lines += ["labels:"] + [f"  {k}: {v}" for k, v in sorted(labels.items())] if labels else []
    lines += ["", "finding data (JSON):", json.dumps(note.finding, sort_keys=True, indent=2)] if note.finding else []
    msg.set_content("\n".join(lines))
    return msg


class EmailChannel(ChannelConfig):
    kind: Literal["email"] = "email"
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    # "starttls" upgrades a plain connection (port 587); "ssl" is implicit TLS (port 465); "none" for a local relay.
    tls: Literal["starttls", "ssl", "none"] = "starttls"
    from_: str = Field(alias="from", pattern=r"^[^\s@]+@[^\s@]+$")
    to: list[str] = Field(min_length=1)
    username: str | None = None
    password_file: Path | None = None

    secret_fields = ("password",)

    @model_validator(mode="after")
    def _login(self) -> EmailChannel:
        if (self.username is None) != (self.password_file is None):
            raise ValueError("username and password_file go together")
        for addr in self.to:
            if "@" not in addr or any(c.isspace() or c in ",;<>" for c in addr):
                raise ValueError(f"not one email address: {addr!r}")
        return self

    def send(self, note: Notification, cancel: threading.Event, deadline: float | None = None) -> Delivery:
        def once(timeout: float) -> str:
            msg = message(note, sender=self.from_, to=self.to)
            password = read_secret(self.password_file, "SMTP password") if self.password_file else None
            try:
                smtp: smtplib.SMTP
                if self.tls == "ssl":
                    smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=ssl.create_default_context())
                else:
                    smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)
                with smtp:
                    if self.tls == "starttls":
                        smtp.starttls(context=ssl.create_default_context())
                    if self.username and password:
                        smtp.login(self.username, password)
                    refused = smtp.send_message(msg)
            except smtplib.SMTPResponseException as exc:
                text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
                # 4xx replies are temporary in SMTP; 5xx are permanent.
                raise Attempt(
                    f"SMTP server answered {exc.smtp_code} {text}", retry=400 <= exc.smtp_code < 500
                ) from None
            except smtplib.SMTPRecipientsRefused as exc:
                raise Attempt(f"SMTP server refused every recipient: {sorted(exc.recipients)}", retry=False) from None
            except TimeoutError:
                raise Attempt(f"no answer from {self.host}:{self.port} within {timeout:.3g}s", retry=True) from None
            except (OSError, smtplib.SMTPException) as exc:
                raise Attempt(f"cannot send through {self.host}:{self.port}: {exc}", retry=True) from None
            if refused:
                raise Attempt(f"SMTP server refused {sorted(refused)}", retry=False)
            return f"sent to {', '.join(self.to)} through {self.host}:{self.port}"

        return with_retries(self, once, cancel, deadline)

    def describe(self) -> str:
        return f"email to {', '.join(self.to)} via {self.host}:{self.port}"
