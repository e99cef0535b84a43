from __future__ import annotations

from pathlib import Path

import pytest

from aiopsd.config import load_settings
from aiopsd.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_example_config_is_valid_and_paths_are_relative_to_the_file() -> None:
    s = load_settings(REPO / "aiopsd.example.yaml")
    assert s.listen == "127.0.0.1:9797"
    assert s.rules_dir == REPO / "rules"
    assert s.state_url == f"sqlite:///{REPO / 'aiopsd-state' / 'state.db'}"
    assert s.watches[0].step == 15.0


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 127.0.0.1:1111\nprometheus: {url: http://a:9090}\n")
    monkeypatch.setenv("AIOPSD_LISTEN", "127.0.0.1:2222")
    monkeypatch.setenv("AIOPSD_PROMETHEUS__URL", "http://b:9090")
    s = load_settings(cfg)
    assert s.port == 2222
    assert s.prometheus.url == "http://b:9090"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("watches:\n  - {name: x, query: up, step: 30x}\n", "watches.0.step", "invalid duration"),
        ("listen: nowhere\n", "listen", "HOST:PORT"),
        ("watches:\n  - {name: x, query: up, detector: magic}\n", "watches.0.detector", "unknown detector"),
        ("surprise: 1\n", "surprise", "Extra inputs"),
        ("watches:\n  - {name: x, query: up, interval: .inf}\n", "watches.0.interval", "finite"),
        ("dispatch_interval: .nan\n", "dispatch_interval", "not a number"),
        ("alerts: {max_age: 0}\n", "alerts.max_age", "more than zero"),
        ("watches:\n  - {name: a, query: up}\n  - {name: a, query: up}\n", None, "unique"),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_store: {kind: mlflow}}\n",
            "prediction_logs.0.model_store",
            "needs tracking_uri",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_store: {kind: s3}}\n",
            "prediction_logs.0.model_store.kind",
            "unknown model_store kind 's3'; known: directory, mlflow",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_store: {kind: directory}}\n",
            "prediction_logs.0",
            "needs path (or set model_dir)",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_dir: d,"
            " lifecycle: {shadow: {rows: 500, for: 1h}}}\n",
            "prediction_logs.0.lifecycle.shadow",
            "exactly one of rows",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, lifecycle: {shadow: {rows: 500}}}\n",
            "prediction_logs.0",
            "lifecycle needs the model's store",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_dir: d, task: regression,"
            " lifecycle: {metric: accuracy}}\n",
            "prediction_logs.0",
            "does not fit task regression: use mae or mse",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_dir: d, lifecycle: {confidence: 1.5}}\n",
            "prediction_logs.0.lifecycle.confidence",
            "less than 1",
        ),
        (
            "prediction_logs:\n  - {model: m, path: p.jsonl, model_dir: d, lifecycle: {watch_on: estimated}}\n",
            "prediction_logs.0",
            "watch_on estimated needs estimate with metric accuracy",
        ),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, body: str, field: str | None, words: str) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    msg = str(info.value)
    assert str(cfg) in msg
    assert words in msg
    if field:
        assert f"field {field!r}" in msg


def test_missing_and_unparsable_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.yaml")
    (tmp_path / "x.yaml").write_text("listen: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(tmp_path / "x.yaml")


def test_approvals_auth_is_its_own_credential_and_cannot_reuse_the_webhooks(tmp_path: Path) -> None:
    from aiopsd.daemon.http.auth import load_approval_credentials

    (tmp_path / "hook.token").write_text("same\n")
    (tmp_path / "approve.token").write_text("other\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "webhook: {auth: {bearer_token_file: hook.token}}\napprovals: {auth: {bearer_token_file: approve.token}}\n"
    )
    creds = load_approval_credentials(load_settings(cfg))
    assert creds.check("Bearer other") and not creds.check("Bearer same")
    cfg.write_text(
        "webhook: {auth: {bearer_token_file: hook.token}}\napprovals: {auth: {bearer_token_file: hook.token}}\n"
    )
    with pytest.raises(ConfigError, match=r"approvals\.auth bearer token must differ"):
        load_approval_credentials(load_settings(cfg))
    cfg.write_text("webhook: {auth: {bearer_token_file: hook.token}}\n")
    assert not load_approval_credentials(load_settings(cfg)).required


def test_model_store_per_prediction_log(tmp_path: Path) -> None:
    from aiopsd.model_store import spec_for

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "prediction_logs:\n"
        "  - {model: a, path: a.jsonl, model_store: {kind: directory, path: models/a}}\n"
        "  - {model: b, path: b.jsonl, model_store: {kind: mlflow, tracking_uri: 'http://127.0.0.1:5000'}}\n"
        "  - {model: c, path: c.jsonl, model_dir: models/c}\n"
    )
    a, b, c = load_settings(cfg).prediction_logs
    assert a.model_store is not None and a.model_store.path == tmp_path / "models" / "a"
    spec = spec_for(b.model_store, model=b.model, model_dir=b.model_dir)
    assert spec is not None and (spec.kind, spec.name, spec.alias) == ("mlflow", "b", "champion")
    assert spec_for(c.model_store, model=c.model, model_dir=c.model_dir) == type(spec)(
        kind="directory", path=tmp_path / "models" / "c"
    )


def test_sharding_section_is_validated_and_off_by_default() -> None:
    from pydantic import ValidationError

    from aiopsd.config import Settings, ShardingConfig

    assert Settings().sharding == ShardingConfig(enabled=False, shards=64, lease_ttl=30.0)
    assert Settings(sharding={"enabled": True, "shards": 16, "lease_ttl": "10s"}).sharding.lease_ttl == 10.0
    for bad in ({"shards": 0}, {"shards": 5000}, {"lease_ttl": "0.5s"}, {"shard": 4}):
        with pytest.raises(ValidationError):
            Settings(sharding=bad)


def test_a_query_selecting_shards_needs_the_shard_label() -> None:
    from pydantic import ValidationError

    from aiopsd.config import Settings

    watch = {"name": "w", "query": 'x{aiopsd_shard=~"$__shards"}', "step": "15s", "interval": "15s"}
    with pytest.raises(ValidationError, match=r"watch w: \$__shards in a query needs sharding.label"):
        Settings(watches=[watch], sharding={"enabled": True})
    assert Settings(watches=[watch], sharding={"enabled": True, "label": "aiopsd_shard"}).sharding.label
    with pytest.raises(ValidationError):
        Settings(sharding={"label": "bad-label"})
