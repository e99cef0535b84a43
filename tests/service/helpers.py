"""Shared bits of the service tests: a slow playbook that leaves marker files, alert rules."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.support import alert, payload

SLOW_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  connection: local
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: say it started
      ansible.builtin.copy:
        content: "{{ aiopsd_run_id }}"
        dest: "{{ marker_dir }}/started-{{ aiopsd_run_id }}-{{ lookup('env', 'TEST_REPLICA_NAME') }}"
    - name: work for a while
      ansible.builtin.command:
        argv: ["{{ ansible_playbook_python }}", "-c", "import time; time.sleep({{ sleep_seconds }})",
               "{{ sleep_token }}"]
    - name: say it finished
      ansible.builtin.copy:
        content: "{{ aiopsd_run_id }}"
        dest: "{{ marker_dir }}/done-{{ aiopsd_run_id }}"
"""

ALERT_RULE = """\
rules:
  - name: {name}
    match: {{kind: alert}}
    action:
      playbook: slow.yml
      targets: localhost
    guards: {{timeout: 5m, max_hosts: 1}}
"""


HA_RULE = """\
rules:
  - name: act-on-alert
    match: {kind: alert, labels: {act: "yes"}}
    action:
      playbook: slow.yml
      targets: "{{ labels.instance }}"
      extra_vars: {sleep_seconds: "{{ labels.sleep | default('0') }}"}
    guards: {timeout: 10m}
"""


def playbook_dir(workdir: Path) -> Path:
    books = workdir / "playbooks"
    books.mkdir(parents=True, exist_ok=True)
    (books / "slow.yml").write_text(SLOW_PLAYBOOK)
    return books


def rules_dir(workdir: Path, name: str = "slow-on-alert") -> Path:
    rules = workdir / "rules"
    rules.mkdir(parents=True, exist_ok=True)
    (rules / "alerts.yaml").write_text(ALERT_RULE.format(name=name))
    return rules


def post_alert(url: str, fingerprint: str, **kw: str) -> httpx.Response:
    body = payload(alert(fingerprint=fingerprint, instance=fingerprint, **kw))
    return httpx.post(f"{url}/api/v1/alerts", json=body, timeout=10)


def processes_with(token: str) -> list[int]:
    """PIDs whose command line contains ``token`` (to prove nothing outlived its action)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            found.append(int(entry))
    return found
