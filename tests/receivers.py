"""Local receivers the notify tests send to: an HTTP server and an SMTP server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HTTPReceiver:
    """Answers each POST with the next scripted (status, delay) and then 200; records what it got."""

    script: list[tuple[int, float]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def answer(self) -> tuple[int, float]:
        return self.script.pop(0) if self.script else (200, 0.0)


@contextmanager
def http_receiver(*script: tuple[int, float]) -> Iterator[HTTPReceiver]:
    rec = HTTPReceiver(script=list(script))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw or b"null"))
            )
            status, delay = rec.answer()
            if delay:
                time.sleep(delay)
            out = b'{"status":"success","message":"Event processed"}' if status < 300 else b"receiver says no"
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)
            except OSError:  # the client gave up (a timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SMTPReceiver:
    host: str
    port: int
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    # SMTP replies to give DATA, one per message, then "250 OK".
    script: list[str] = field(default_factory=list)


@contextmanager
def smtp_receiver(*script: str) -> Iterator[SMTPReceiver]:
    from aiosmtpd.controller import Controller

    from aiopsd.demo.stack import free_port

    rec = SMTPReceiver("127.0.0.1", free_port(), script=list(script))

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if rec.script:
                return rec.script.pop(0)
            msg = message_from_bytes(envelope.content, policy=policy.default)
            rec.messages.append((envelope.mail_from, list(envelope.rcpt_tos), msg))
            return "250 OK"

    controller = Controller(Handler(), hostname=rec.host, port=rec.port)
    controller.start()
    try:
        yield rec
    finally:
        controller.stop()
