"""The opt-in for Ansible templating, the playbook path boundary and `aiopsd check`'s warning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from aiopsd.actions.playbook import resolve_playbook, run_playbook
from aiopsd.cli import create_app
from aiopsd.errors import ActionError
from aiopsd.models import RunStatus

REPO = Path(__file__).resolve().parents[2]


def test_template_vars_are_templated_by_ansible_and_extra_vars_stay_literal(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    expr = "{{ lookup('env', 'HOME') }}"
    res = run_playbook(
        playbooks_dir=REPO / "tests" / "playbooks",
        playbook="echo_vars.yml",
        targets=["localhost"],
        extra_vars={"out_dir": str(out), "corpus_names": ["literal", "templated"], "literal": expr},
        template_vars={"templated": expr},
        check=False,
        timeout=120,
        private_dir=tmp_path / "run",
    )
    assert res.status == RunStatus.SUCCEEDED, res.output
    assert (out / "literal").read_text() == expr
    assert (out / "templated").read_text() == os.environ["HOME"]


def test_playbook_path_must_resolve_inside_playbooks_dir(tmp_path: Path) -> None:
    books, outside = tmp_path / "books", tmp_path / "outside.yml"
    books.mkdir()
    outside.write_text("- hosts: all\n  tasks: []\n")
    (books / "ok.yml").write_text("- hosts: all\n  tasks: []\n")
    (books / "link.yml").symlink_to(outside)
    (books / "sub").mkdir()
    (books / "sub" / "inner.yml").symlink_to(books / "ok.yml")
    assert resolve_playbook(books, "ok.yml") == (books / "ok.yml").resolve()
    assert resolve_playbook(books, "sub/inner.yml") == (books / "ok.yml").resolve()
    for bad in ("link.yml", "../outside.yml", str(outside), "sub/../../outside.yml", "ok.yml\x00", "a\nb.yml"):
        with pytest.raises(ActionError):
            resolve_playbook(books, bad)
    with pytest.raises(ActionError, match="outside playbooks_dir"):
        run_playbook(
            playbooks_dir=books,
            playbook="link.yml",
            targets=["localhost"],
            extra_vars={},
            check=True,
            timeout=30,
            private_dir=tmp_path / "run",
        )
    assert not (tmp_path / "run").exists()


def test_check_warns_about_every_rule_that_opts_into_templating(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        yaml.safe_dump(
            {
                "rules": [
                    {
                        "name": "plain",
                        "match": {"kind": "alert"},
                        "action": {
                            "playbook": "collect_diagnostics.yml",
                            "extra_vars": {"incident": "{{ labels.alertname }}"},
                        },
                    },
                    {
                        "name": "opted-in",
                        "match": {"kind": "alert"},
                        "action": {
                            "playbook": "collect_diagnostics.yml",
                            "template_vars": {"diagnostics_dir": "{{ x }}"},
                        },
                    },
                ]
            }
        )
    )
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"rules_dir": "rules", "playbooks_dir": str(REPO / "playbooks")}))
    r = CliRunner().invoke(create_app(), ["check", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    warning = " ".join(r.stderr.split())
    assert "rule opted-in: action.template_vars (diagnostics_dir)" in warning
    assert "plain" not in warning
