"""The Alertmanager webhook's request path: auth, body limit, parse, group commit, answer.

Answers follow Alertmanager's retry rules: 2xx only once every alert of the request
is committed, 4xx (never retried) for a payload that will never be valid, 503
(retried) when the store cannot commit or the daemon is shutting down.

:class:`WebhookApp` is the FastAPI app with one shortcut: ``POST /api/v1/alerts`` is
answered by :meth:`WebhookIntake.asgi` straight from the ASGI scope, without
Starlette's middleware, routing, ``Request`` and ``JSONResponse`` objects. Those cost
about a third of the event loop's time per single-alert request (py-spy, bench/webhook.py);
the route is still declared on the FastAPI app (OpenAPI, and the same handler when
the app is mounted elsewhere), and both ways run :meth:`WebhookIntake.receive`.

Parsing goes from the body bytes straight into the pydantic model
(``model_validate_json``, pydantic-core's own JSON parser, no intermediate dicts).
A body that parser refuses as JSON is parsed again the old way (``json.loads``, then
``model_validate``), so a refused payload gets exactly the reason it always got: a
lone surrogate escape is a 422 naming the field, not a 400, and a non-UTF-8 body a 400.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from pydantic import ValidationError

from aiopsd.daemon.http.auth import Credentials
from aiopsd.daemon.http.intake import GroupCommitter
from aiopsd.daemon.runtime import Runtime
from aiopsd.errors import StoreUnavailableError
from aiopsd.sources.alertmanager import WebhookPayload
from aiopsd.store.state import AlertBatch

logger = logging.getLogger(__name__)

PATH = "/api/v1/alerts"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def parse_payload(raw: bytes) -> WebhookPayload | tuple[int, str]:
    """The payload, or (status, reason) for a body that is not one."""
    try:
        return WebhookPayload.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"] != "json_invalid":
            return 422, _reason(exc)
    # pydantic-core refused the JSON itself: the stdlib decides, for the same reasons as always.
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return 400, f"body is not valid JSON: {exc}"
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        return 422, _reason(exc)


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "body"
    return f"not an Alertmanager v4 payload: {where}: {err['msg']}"


class WebhookIntake:
    """One daemon's webhook: checks, parses and commits (through a :class:`GroupCommitter`)."""

    def __init__(self, runtime: Runtime, credentials: Credentials, committer: GroupCommitter) -> None:
        self.runtime = runtime
        self.credentials = credentials
        self.committer = committer
        self.max_body = runtime.settings.webhook.max_body_bytes

    async def receive(
        self, authorization: str | None, content_length: str | None, chunks: AsyncIterator[bytes]
    ) -> tuple[int, dict[str, Any]]:
        """The status and JSON body answering one POST; counts it in the webhook metrics."""
        try:
            code, body = await self._receive(authorization, content_length, chunks)
        except StoreUnavailableError as exc:
            logger.error("webhook: %s", exc)
            code, body = 503, {"error": "state store unavailable; Alertmanager will retry"}
        except Exception as exc:  # never a 500: a sender retries a 503; the traceback goes to the log
            logger.error("unexpected error on POST %s", PATH, exc_info=exc)
            code, body = 503, {"error": f"internal error ({exc.__class__.__name__}); retry later"}
        self.runtime.metrics.webhook_requests.labels(str(code)).inc()
        return code, body

    async def _receive(
        self, authorization: str | None, content_length: str | None, chunks: AsyncIterator[bytes]
    ) -> tuple[int, dict[str, Any]]:
        rt, metrics, max_body = self.runtime, self.runtime.metrics, self.max_body
        if rt.draining.is_set():
            return 503, {"error": "aiopsd is shutting down; retry later"}
        if not self.credentials.check(authorization):
            metrics.alerts.labels("rejected").inc()
            return 401, {"error": "missing or wrong credentials for the webhook"}
        if content_length and content_length.isdigit() and int(content_length) > max_body:
            metrics.alerts.labels("rejected").inc()
            return 413, {"error": f"body larger than {max_body} bytes"}
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > max_body:
                metrics.alerts.labels("rejected").inc()
                return 413, {"error": f"body larger than {max_body} bytes"}
        parsed = parse_payload(b"".join(parts))
        if isinstance(parsed, tuple):
            metrics.alerts.labels("rejected").inc()
            return parsed[0], {"error": parsed[1]}
        started = time.perf_counter()
        result = await self.committer.submit(
            AlertBatch(
                [a.to_incoming() for a in parsed.alerts],
                received_at=time.time(),
                receiver=parsed.receiver or None,
                group_key=parsed.group_key or None,
            )
        )
        metrics.store_latency.labels("accept_alerts").observe(time.perf_counter() - started)
        metrics.alerts.labels("accepted").inc(result.accepted)
        metrics.alerts.labels("duplicate").inc(result.duplicates)
        metrics.findings.labels("alert").inc(result.opened)
        return 200, {"accepted": result.accepted, "duplicates": result.duplicates}

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /api/v1/alerts`` as a bare ASGI app (see the module doc)."""
        authorization = content_length = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-length" and content_length is None:
                content_length = value.decode("latin-1")

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        code, body = await self.receive(authorization, content_length, chunks())
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})


class WebhookApp(FastAPI):
    """FastAPI, with ``POST /api/v1/alerts`` answered by :attr:`webhook` directly (see the module doc)."""

    webhook: WebhookIntake | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hook = self.webhook
        if hook is not None and scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await hook.asgi(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
