"""An operator approves a challenger: the same three writes as a promotion the shadow decides.

The record says ``promoting`` (decision: approved, by whom), the pointer moves, the audit entry is
written, then the record says ``approved``. A crash in between is finished by the drift watch's
lifecycle on its next refresh (:mod:`aiopsd.sources.predictions.lifecycle`), which also arms the
regression watch after an approval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiopsd.model_store.base import ModelStore, ModelVersion, RegistryError

APPROVABLE = ("shadow", "candidate")

AuditFn = Callable[[str, datetime, Mapping[str, Any]], None]


def approve(store: ModelStore, number: int, *, by: str, audit: AuditFn, model: str) -> ModelVersion:
    """Serve ``number`` (in shadow, or a candidate) because an operator said so; audited."""
    v = store.get(number)
    if v.status not in APPROVABLE:
        raise RegistryError(
            f"version {number} of {store.label} is {v.status}; only a version in shadow or a candidate can be approved"
        )
    raw = v.meta.get("lifecycle")
    rec: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
    now = datetime.now(UTC)
    reason = f"approved by {by}"
    decision = {"outcome": "approved", "by": by, "at": now.isoformat(timespec="seconds"), "reason": reason}
    rec.update(state="promoting", champion=store.current(), decision=decision)
    store.mark(number, lifecycle=rec)
    store.promote(number, reason=reason)
    audit("model_promoted", now, {"model": model, "store": store.label, "version": number, "lifecycle": rec})
    return store.mark(number, lifecycle={**rec, "state": "approved"})
