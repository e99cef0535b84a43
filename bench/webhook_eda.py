"""Event-Driven Ansible as the webhook bench's comparison: installed into a throwaway venv, run, stopped.

``install`` builds a venv under a temporary directory with ansible-rulebook 1.3.2 (and
ansible-core, aiohttp and dpath, which the alertmanager source imports) from PyPI,
then installs the ``ansible.eda`` collection into that directory:

- from Ansible Galaxy (``ansible-galaxy collection install ansible.eda``) by default;
- from ``--eda-collection PATH`` when given: a collection tarball, or a checkout of
  the collection's source (a directory with ``galaxy.yml``), which is built first.
  Use it where Galaxy cannot be reached.

ansible-rulebook needs Java 17 (``apt-get install openjdk-17-jre-headless``).

The rulebook is the smallest a user would write: the ``ansible.eda.alertmanager``
source with its defaults, and one rule matching every firing alert whose action is
``none``. EDA answers 202 once the alert is on its in-memory asyncio queue: nothing
is written anywhere, so a crash loses every queued event (not durable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

RULEBOOK_VERSION = "1.3.2"
PYPI = [f"ansible-rulebook=={RULEBOOK_VERSION}", "ansible-core", "aiohttp", "dpath"]


class EdaUnavailable(RuntimeError):
    """EDA could not be installed or started here; the message says why."""


@dataclass
class Eda:
    root: Path  # the throwaway directory: venv, collections, rulebook, log

    @property
    def bin(self) -> Path:
        return self.root / "venv" / "bin"

    @property
    def collections(self) -> Path:
        return self.root / "collections"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        # ansible-rulebook looks ansible-galaxy and ansible-playbook up on PATH.
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["ANSIBLE_COLLECTIONS_PATH"] = str(self.collections)
        return env


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None, timeout: float = 1200) -> None:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EdaUnavailable(f"{what}: {exc}") from exc
    if res.returncode != 0:
        tail = " ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
        raise EdaUnavailable(f"{what} failed (exit {res.returncode}): {tail[-400:]}")


def _java() -> None:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    except OSError:
        raise EdaUnavailable("ansible-rulebook needs Java 17: apt-get install openjdk-17-jre-headless") from None
    if out.returncode != 0:
        raise EdaUnavailable(f"java -version failed: {out.stderr.strip()[:200]}")


def install(root: Path, collection: Path | None = None) -> Eda:
    """A venv with ansible-rulebook and the ansible.eda collection under ``root``."""
    _java()
    eda = Eda(root)
    _run([sys.executable, "-m", "venv", str(root / "venv")], "python -m venv")
    _run([str(eda.bin / "pip"), "install", "-q", *PYPI], f"pip install {' '.join(PYPI)}")
    galaxy = str(eda.bin / "ansible-galaxy")
    source = "ansible.eda"
    if collection is not None:
        source = str(collection)
        if collection.is_dir():
            built = root / "built"
            _run(
                [galaxy, "collection", "build", "--force", "--output-path", str(built), str(collection)],
                f"ansible-galaxy collection build {collection}",
                env=eda.env(),
            )
            source = str(next(built.glob("ansible-eda-*.tar.gz")))
    _run(
        [galaxy, "collection", "install", "-p", str(eda.collections), source],
        f"ansible-galaxy collection install {source}"
        + ("" if collection else " (Galaxy unreachable? pass --eda-collection PATH)"),
        env=eda.env(),
    )
    return eda


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str  # the webhook URL to post to


def start(eda: Eda, port: int) -> Running:
    """ansible-rulebook with the alertmanager source on 127.0.0.1:``port``; waits until it answers."""
    rulebook = [
        {
            "name": "aiopsd bench",
            "hosts": "all",
            "sources": [{"ansible.eda.alertmanager": {"host": "127.0.0.1", "port": port}}],
            "rules": [
                {"name": "every firing alert", "condition": 'event.alert.status == "firing"', "action": {"none": {}}}
            ],
        }
    ]
    (eda.root / "rulebook.yml").write_text(yaml.safe_dump(rulebook, sort_keys=False))
    (eda.root / "inventory.yml").write_text(
        yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}})
    )
    with (eda.root / "rulebook.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                str(eda.bin / "ansible-rulebook"),
                "-r",
                str(eda.root / "rulebook.yml"),
                "-i",
                str(eda.root / "inventory.yml"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=eda.env(),
            cwd=eda.root,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EdaUnavailable(f"ansible-rulebook exited: {(eda.root / 'rulebook.log').read_text()[-600:]}")
        try:
            if httpx.get(f"{base}/", timeout=1).status_code == 200:
                return Running(proc, f"{base}/alerts")
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    proc.wait()
    raise EdaUnavailable("ansible-rulebook's alertmanager source did not answer within 120 s")


def stop(running: Running) -> None:
    if running.proc.poll() is None:
        running.proc.terminate()
        try:
            running.proc.wait(30)
        except subprocess.TimeoutExpired:
            running.proc.kill()
            running.proc.wait()


def remove(eda: Eda) -> None:
    shutil.rmtree(eda.root, ignore_errors=True)
