"""job_template actions against a local HTTP server that follows AWX's documented API v2.

AWX/AAP cannot run in the test environment; the server below implements the endpoints
aiopsd uses (launch, job detail, cancel, stdout) with AWX's status codes, bodies and
token auth, so the client is exercised over real HTTP.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from aiopsd.actions.base import ActionContext
from aiopsd.actions.executors import context_for, execute
from aiopsd.config import load_settings
from aiopsd.engine import load_rules
from aiopsd.models import ActionRun, RunStatus

TOKEN = "awx-test-token"


class FakeAWX:
    def __init__(self) -> None:
        self.jobs: dict[int, dict[str, Any]] = {}
        self.launches: list[dict[str, Any]] = []
        self.cancels: list[int] = []
        self.finish_after: int | None = 3  # job detail reads before the job finishes (None: never)
        self.final = "successful"
        awx = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def _send(self, code: int, body: object, ctype: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"detail": "Authentication credentials were not provided."})
                    return False
                return True

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                parts = self.path.strip("/").split("/")
                if parts[:3] == ["api", "v2", "job_templates"] and parts[4:] == ["launch"]:
                    job = len(awx.jobs) + 1
                    awx.jobs[job] = {"id": job, "status": "pending", "reads": 0}
                    awx.launches.append({"template": parts[3], **body})
                    self._send(
                        201,
                        {
                            "job": job,
                            "id": job,
                            "type": "job",
                            "status": "pending",
                            "url": f"/api/v2/jobs/{job}/",
                            "ignored_fields": {},
                        },
                    )
                elif parts[:3] == ["api", "v2", "jobs"] and parts[4:] == ["cancel"]:
                    job = int(parts[3])
                    awx.cancels.append(job)
                    awx.jobs[job]["status"] = "canceled"
                    self._send(202, "")
                else:
                    self._send(404, {"detail": "Not found."})

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                path = self.path.split("?")[0]
                parts = path.strip("/").split("/")
                if parts[:3] == ["api", "v2", "jobs"] and len(parts) == 4:
                    job = awx.jobs[int(parts[3])]
                    job["reads"] += 1
                    if job["status"] != "canceled":
                        done = awx.finish_after is not None and job["reads"] > awx.finish_after
                        job["status"] = awx.final if done else "running"
                    self._send(
                        200,
                        {
                            "id": job["id"],
                            "type": "job",
                            "status": job["status"],
                            "failed": job["status"] in ("failed", "error"),
                        },
                    )
                elif parts[:3] == ["api", "v2", "jobs"] and parts[4:] == ["stdout"]:
                    self._send(200, "PLAY [restart] ***\nPLAY RECAP ***\nweb-1 : ok=2 changed=1\n", "text/plain")
                else:
                    self._send(404, {"detail": "Not found."})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def awx() -> Iterator[FakeAWX]:
    fake = FakeAWX()
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()


RULE = """\
rules:
  - name: restart-via-awx
    match: {kind: alert}
    action:
      job_template:
        id: 42
        limit: "{{ labels.instance }}"
        extra_vars: {service: api}
    guards: {timeout: 5m}
"""


def settings_for(tmp_path: Path, awx_url: str, token: str = TOKEN) -> Any:
    (tmp_path / "awx.token").write_text(token + "\n")
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "awx.yaml").write_text(RULE)
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "rules_dir": "rules",
                "playbooks_dir": ".",
                "awx": {"url": awx_url, "token_file": "awx.token", "poll_interval": "0.05s"},
            }
        )
    )
    return load_settings(cfg)


def run_of(action: dict[str, Any], dry_run: bool = False) -> ActionRun:
    return ActionRun(
        id=1,
        decision_id="d1",
        rule="restart-via-awx",
        kind="job_template",
        targets=(),
        status=RunStatus.RUNNING,
        created_at=datetime.now(UTC),
        action=action,
        dry_run=dry_run,
    )


def ctx_of(settings: Any, tmp_path: Path, timeout: float, cancel: threading.Event | None = None) -> ActionContext:
    return context_for(settings, private_dir=tmp_path / "run", timeout=timeout, cancel=cancel or threading.Event())


def rendered_action(settings: Any) -> dict[str, Any]:
    [rule] = load_rules(settings.rules_dir, settings.playbooks_dir)
    action = rule.action.model_dump(mode="json")
    action["job_template"]["limit"] = "web-1"  # as the engine renders {{ labels.instance }}
    return action


def test_job_runs_to_success_and_keeps_the_stdout_link(tmp_path: Path, awx: FakeAWX) -> None:
    settings = settings_for(tmp_path, awx.url)
    result = execute(run_of(rendered_action(settings)), ctx_of(settings, tmp_path, 30))
    assert result.status == RunStatus.SUCCEEDED, result.error
    assert awx.launches == [{"template": "42", "limit": "web-1", "extra_vars": {"service": "api"}}]
    assert result.artifact_dir == f"{awx.url}/api/v2/jobs/1/stdout/?format=txt"
    assert "PLAY RECAP" in result.output and "AWX job 1 (template 42): successful" in result.output
    assert awx.cancels == []


def test_failed_job_is_a_failed_run(tmp_path: Path, awx: FakeAWX) -> None:
    awx.final = "failed"
    settings = settings_for(tmp_path, awx.url)
    result = execute(run_of(rendered_action(settings)), ctx_of(settings, tmp_path, 30))
    assert result.status == RunStatus.FAILED and result.error == "AWX job 1 ended failed"


def test_timeout_cancels_the_job_in_awx(tmp_path: Path, awx: FakeAWX) -> None:
    awx.finish_after = None
    settings = settings_for(tmp_path, awx.url)
    result = execute(run_of(rendered_action(settings)), ctx_of(settings, tmp_path, 0.5))
    assert result.status == RunStatus.TIMED_OUT
    assert awx.cancels == [1] and awx.jobs[1]["status"] == "canceled"
    assert "cancel requested (HTTP 202)" in result.error


def test_daemon_shutdown_cancels_the_job(tmp_path: Path, awx: FakeAWX) -> None:
    awx.finish_after = None
    settings = settings_for(tmp_path, awx.url)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    result = execute(run_of(rendered_action(settings)), ctx_of(settings, tmp_path, 60, cancel))
    assert result.status == RunStatus.CANCELED and awx.cancels == [1]


def test_wrong_token_fails_with_the_http_status(tmp_path: Path, awx: FakeAWX) -> None:
    settings = settings_for(tmp_path, awx.url, token="wrong")
    result = execute(run_of(rendered_action(settings)), ctx_of(settings, tmp_path, 30))
    assert result.status == RunStatus.FAILED and "HTTP 401" in result.error
    assert awx.launches == []


def test_dry_run_launches_nothing(tmp_path: Path, awx: FakeAWX) -> None:
    settings = settings_for(tmp_path, awx.url)
    result = execute(run_of(rendered_action(settings), dry_run=True), ctx_of(settings, tmp_path, 30))
    assert result.status == RunStatus.SUCCEEDED and "would POST" in result.output
    assert awx.launches == []
