"""The notify channel contract: one config model and one ``send`` per channel kind.

A channel gets a :class:`Notification` whose text was rendered once, sandboxed, by
the engine; a channel never renders it again. It builds its wire format as data
(JSON bodies through httpx, email through :mod:`email.message`), so a label value
that looks like a template, markup or a header arrives as the literal text it is.

Delivery is retried with exponential backoff on what may pass (connection errors,
timeouts, HTTP 429 and 5xx); a refusal that will not pass (another 4xx) stops at
once. Either way the last reason is returned: a failure is recorded, never swallowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
from pydantic import Field, model_validator

from aiopsd.durations import Duration
from aiopsd.models import Frozen

Event = Literal["trigger", "resolve"]
Severity = Literal["critical", "error", "warning", "info"]
# Pause between attempts is backoff * 2**n, but never longer than this.
MAX_PAUSE = 60.0


@dataclass(frozen=True)
class Notification:
    """What one notify run says, already rendered; every field is data to the channel."""

    rule: str
    title: str
    message: str
    event: Event = "trigger"
    severity: Severity = "warning"
    dedup_key: str = ""
    finding: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None


@dataclass(frozen=True)
class Delivery:
    """The outcome of one delivery (after its retries): ``ok``, and what the receiver said or why not."""

    ok: bool
    detail: str
    attempts: int = 1


class Attempt(Exception):
    """One failed attempt; ``retry`` says whether another attempt may succeed."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class ChannelConfig(Frozen):
    """Settings every channel has. Subclasses add theirs and set ``kind`` and ``secret_fields``."""

    kind: str
    # Per attempt (connect + send + answer).
    timeout: Duration = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    backoff: Duration = Field(default=1.0, ge=0)

    # Settings that hold a secret: only their ``<name>_file`` form is accepted.
    secret_fields: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _no_inline_secrets(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in cls.secret_fields:
                if name in data:
                    raise ValueError(
                        f"{name} is a secret and is never accepted inline: put it in a file "
                        f"readable only by aiopsd and set {name}_file to its path"
                    )
        return data

    def send(self, note: Notification, cancel: threading.Event, deadline: float | None = None) -> Delivery:
        """Deliver ``note`` (with retries), giving up at ``deadline`` (monotonic seconds) or on ``cancel``."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


def read_secret(path: Path, what: str) -> str:
    """The secret in ``path`` (surrounding whitespace stripped); a missing or empty file is an Attempt failure."""
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise Attempt(f"cannot read {what} from {path}: {exc.strerror or exc}", retry=False) from None
    if not value:
        raise Attempt(f"{what} file {path} is empty", retry=False)
    return value


def with_retries(
    cfg: ChannelConfig, once: Callable[[float], str], cancel: threading.Event, deadline: float | None = None
) -> Delivery:
    """Call ``once(timeout)`` until it returns (the receiver's answer) or fails for good; the last reason is kept.

    ``deadline`` (``time.monotonic()`` seconds; the run's own timeout) bounds every attempt and
    every pause: no attempt starts or waits past it.
    """
    attempts = cfg.retries + 1
    for n in range(1, attempts + 1):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return Delivery(False, f"the run's timeout ran out after {n - 1} attempts", attempts=n - 1)
        try:
            return Delivery(True, once(cfg.timeout if left is None else min(cfg.timeout, left)), attempts=n)
        except Attempt as exc:
            if not exc.retry or n == attempts:
                tried = f" after {n} attempts" if n > 1 else ""
                return Delivery(False, f"{exc.reason}{tried}", attempts=n)
            last = exc.reason
        pause = min(cfg.backoff * 2 ** (n - 1), MAX_PAUSE)
        if deadline is not None and time.monotonic() + pause >= deadline:
            return Delivery(False, f"{last}; no time left for another attempt within the run's timeout", attempts=n)
        if cancel.wait(pause):
            return Delivery(False, "canceled while waiting to retry", attempts=n)
    raise AssertionError("unreachable")


def post_json(
    url: str,
    body: dict[str, Any],
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202, 204),
) -> str:
    """POST ``body`` as JSON; raise :class:`Attempt` on anything but an ``ok`` status."""
    try:
        resp = httpx.post(url, json=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        raise Attempt(f"no answer within {timeout:.3g}s", retry=True) from None
    except httpx.HTTPError as exc:
        raise Attempt(f"cannot reach the receiver: {exc}", retry=True) from None
    if resp.status_code in ok:
        return f"HTTP {resp.status_code} {resp.text[:200]}".rstrip()
    retry = resp.status_code == 429 or resp.status_code >= 500
    raise Attempt(f"receiver answered HTTP {resp.status_code}: {resp.text[:300]}".rstrip(": "), retry=retry)
