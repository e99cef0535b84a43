"""Every hostile label value through the real daemon: webhook -> engine -> ansible-runner.

One daemon, two paths:

- The shipped rules and playbooks, with one change to the rule file: ``diagnostics-on-alert``'s
  15-minute cooldown per host is removed, so that every payload acts instead of the first one
  per host (the cooldown itself is covered in tests/unit). Every ``host`` value goes this way,
  and the first ``alertname`` value of a few classes (each is one ansible run, seconds of CPU).
  ``playbook_vars`` points the playbook's ``diagnostics_dir`` into the test's directory.
- Every value at once, as one alert's labels rendered into one rule's ``extra_vars``, through
  one ansible run of ``tests/playbooks/echo_vars.yml``, which copies each variable as Ansible
  sees it into a file: each file must hold exactly the characters sent.

Per value: the decision is an act whose playbook saw the literal characters or a skip
``unsafe_target``; its canary file never appears; nothing is written outside the daemon's
state dir (which holds the runs' private dirs), ``diagnostics_dir`` and the echo directory;
and the audit chain verifies.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.security.corpus import CORPUS, Payload
from tests.support import REPO, alert, payload, running_daemon, tool_env, wait_for, write_config

LOCAL = ("localhost", "127.0.0.1", "::1")
# The alertname classes that also go through the shipped playbook (first value of each; the
# rest of the corpus reaches Ansible through the one echo run): the repro, a file name
# built from traversal, newlines, and a long value.
SHIPPED_CLASSES = frozenset({"jinja", "traversal", "newline", "long"})


def incident_file(incident: str) -> str:
    """What the shipped playbooks make of an incident before using it as a file name."""
    return re.sub(r"^[.]", "_", re.sub(r"[^A-Za-z0-9_.-]", "_", incident))[:100] + ".txt"


def shipped_rules(dest: Path) -> None:
    dest.mkdir()
    for src in sorted((REPO / "rules").glob("*.yaml")):
        doc = yaml.safe_load(src.read_text())
        for r in doc["rules"]:
            if r["name"] == "diagnostics-on-alert":
                r["guards"].pop("cooldown")
        (dest / src.name).write_text(yaml.safe_dump(doc, sort_keys=False))


def corpus_rule(dest: Path, names: list[str], out_dir: Path) -> None:
    extra: dict[str, Any] = {n: f"{{{{ labels.{n} }}}}" for n in names}
    extra.update(out_dir=str(out_dir), corpus_names=names)
    (dest / "corpus.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "corpus-literal",
                        "match": {"kind": "alert", "labels": {"alertname": "CorpusAll"}},
                        "action": {"playbook": "echo_vars.yml", "targets": "localhost", "extra_vars": extra},
                    }
                ]
            }
        )
    )


def files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() or p.is_symlink()}


@pytest.mark.timeout(900)
def test_every_hostile_label_value_is_data_or_refused(tmp_path: Path) -> None:
    work, canaries, diag = tmp_path / "w", tmp_path / "w" / "canary", tmp_path / "w" / "diag"
    canaries.mkdir(parents=True)
    shipped_rules(work / "rules")
    values = [p.value.replace("CANARY", str(canaries / f"c{i}")) for i, p in enumerate(CORPUS)]
    echo, books = work / "echo", work / "books"
    echo.mkdir()
    books.mkdir()
    for src in [*(REPO / "playbooks").glob("*.yml"), REPO / "tests" / "playbooks" / "echo_vars.yml"]:
        (books / src.name).write_text(src.read_text())
    data = {f"v{i:02d}": v for i, (p, v) in enumerate(zip(CORPUS, values, strict=True)) if p.where != "intake"}
    corpus_rule(work / "rules", sorted(data), echo)
    cfg = write_config(
        work,
        rules_dir=str(work / "rules"),
        playbooks_dir=str(books),
        playbook_vars={"diagnostics_dir": str(diag)},
        actions={"concurrency": 3},
    )
    before = files(work)
    sent: dict[str, tuple[Payload, str]] = {}
    alerts: list[dict[str, Any]] = [alert("CorpusAll", fingerprint="corpus-all", **data)]
    shipped_classes: set[str] = set()
    for i, (p, value) in enumerate(zip(CORPUS, values, strict=True)):
        fp = f"corpus-{i:02d}"
        if p.where == "alertname" and p.klass in SHIPPED_CLASSES and p.klass not in shipped_classes:
            shipped_classes.add(p.klass)
            # Three local hosts, so three runs go at once (the per-target lock serialises each host).
            alerts.append(alert(value, fingerprint=fp, severity="critical", host=LOCAL[i % 3]))
        elif p.where == "host":
            alerts.append(alert(f"HostCorpus{i}", fingerprint=fp, severity="critical", host=value))
        sent[fp] = (p, value)
    with running_daemon(cfg) as d:
        for p, value in ((p, v) for p, v in zip(CORPUS, values, strict=True) if p.where == "intake"):
            r = httpx.post(
                f"{d.url}/api/v1/alerts",
                timeout=30,
                headers={"content-type": "application/json"},
                content=json.dumps(payload(alert(value, fingerprint="intake", severity="critical"))),
            )
            assert r.status_code == 422 and "alerts.0.labels" in r.json()["error"], (p, r.text)
        r = httpx.post(
            f"{d.url}/api/v1/alerts",
            timeout=60,
            headers={"content-type": "application/json"},
            content=json.dumps(payload(*alerts)),
        )
        assert r.status_code == 200 and r.json()["accepted"] == len(alerts), r.text
        by_fp = {a["fingerprint"]: a["finding_id"] for a in d.get("/api/v1/alerts?limit=1000")}
        assert "intake" not in by_fp and len(by_fp) == len(alerts)

        def settled() -> Any:
            ds = d.get("/api/v1/decisions?limit=1000")
            runs = d.get("/api/v1/actions?limit=1000")
            done = all(run["status"] in ("succeeded", "failed", "timed_out") for run in runs)
            return (
                (ds, runs)
                if len(ds) == len(alerts) and len(runs) == sum(x["outcome"] == "act" for x in ds) and done
                else None
            )

        decisions, runs = wait_for(settled, timeout=900, interval=2, what="every payload decided and run")
    decision_of = {x["finding_id"]: x for x in decisions}
    run_of = {r["decision_id"]: r for r in runs}
    everything = run_of[decision_of[by_fp["corpus-all"]]["id"]]
    assert everything["status"] == "succeeded", everything["output"][-3000:]
    for name, value in data.items():  # what Ansible saw is exactly what was sent
        assert (echo / name).read_bytes().decode("utf-8") == value, (name, value)
    outcome: dict[str, list[str]] = {}
    expected_diag: set[Path] = set()
    for fp, (p, value) in sent.items():
        if p.where == "intake":
            outcome.setdefault(p.klass, []).append("422 at intake")
            continue
        outcome.setdefault(p.klass, []).append("extra var: act (literal)")
        if fp not in by_fp:
            continue
        dec = decision_of[by_fp[fp]]
        if p.where == "alertname" or p.expect:
            assert (dec["outcome"], dec["code"]) == ("act", "act"), (p, dec)
            run = run_of[dec["id"]]
            assert run["status"] == "succeeded", (p, run["error"], run["output"][-2000:])
            incident = dec["action"]["extra_vars"]["incident"]
            if p.where == "alertname":
                assert incident == f"{value}-{by_fp[fp]}"  # the literal label, rendered once
            else:
                assert dec["targets"] == [p.expect]
            written = diag / incident_file(incident)
            assert "## memory" in written.read_text(), p
            expected_diag.add(written)
            outcome.setdefault(p.klass, []).append("act (literal)")
        else:
            assert (dec["outcome"], dec["code"]) == ("skip", "unsafe_target"), (p, dec)
            assert dec["targets"] == [] and "unsafe target" in dec["reason"]
            outcome.setdefault(p.klass, []).append("skip unsafe_target")
    assert sorted(canaries.iterdir()) == [], "a payload ran a command"
    new = files(work) - before
    state = work / "state"
    outside = {
        f for f in new if not f.is_relative_to(state) and f.parent not in (diag, echo) and f.name != "aiopsd.log"
    }
    assert outside == set()
    assert {f.name for f in new if f.parent == echo} == set(data)
    assert {f for f in new if f.parent == diag} == expected_diag
    verify = subprocess.run(
        [sys.executable, "-m", "aiopsd", "audit", "verify", "--config", str(cfg)],
        check=False,
        capture_output=True,
        text=True,
        env=tool_env(),
        timeout=120,
    )
    assert verify.returncode == 0 and "audit log intact" in verify.stdout, verify.stdout + verify.stderr
    print("\npayload class -> outcome:", json.dumps({k: sorted(set(v)) for k, v in outcome.items()}))
