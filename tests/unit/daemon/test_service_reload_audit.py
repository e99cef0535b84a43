"""A SIGHUP reload, accepted or rejected, leaves an audit entry saying which."""

from __future__ import annotations

from pathlib import Path

import yaml

from aiopsd.config import load_settings
from aiopsd.daemon.service import Daemon


def test_reload_is_audited_and_a_bad_rule_file_keeps_the_running_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    good = {"rules": [{"name": "n", "match": {"kind": "alert"}, "action": {"notify": {"message": "x"}}}]}
    (rules / "a.yaml").write_text(yaml.safe_dump(good))
    cfg = tmp_path / "aiopsd.yaml"
    cfg.write_text(yaml.safe_dump({"state_url": "sqlite:///state.db", "state_dir": "state", "rules_dir": "rules"}))
    daemon = Daemon(load_settings(cfg), str(cfg))
    store = daemon.runtime.store
    try:
        assert daemon.reload()
        (rules / "b.yaml").write_text("rules: [{name: broken, match: {kind: nope}}]\n")
        assert not daemon.reload()
        assert list(daemon.runtime.rules_by_name()) == ["n"]
        entries = [e["event"] for e in reversed(store.audit_entries()) if e["kind"] == "config_reload"]
        assert entries[0] == {"ok": True, "detail": "1 rules", "rules": ["n"]}
        assert entries[1]["ok"] is False and "b.yaml" in entries[1]["detail"]
        assert store.verify_audit().ok
    finally:
        store.close()
