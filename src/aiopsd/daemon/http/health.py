"""A rule's closed-loop health for the status page, the API and ``aiopsd status``: outcomes, rate, demotion."""

from __future__ import annotations

from aiopsd.daemon.http.views import RuleHealth
from aiopsd.engine.evaluate import EngineState
from aiopsd.engine.rules import Rule
from aiopsd.engine.verify import JUDGED
from aiopsd.models import VerifyOutcome
from aiopsd.store import StateStore

# Outcomes shown per rule.
SHOWN = 10


def rule_health(store: StateStore, rule: Rule, state: EngineState) -> RuleHealth | None:
    """None for a rule without ``verify:``. The rate reads the outcomes min_success reads (since the
    last restore), or the shown ones without min_success."""
    if rule.verify is None:
        return None
    restored = store.rule_restores().get(rule.name)
    history = store.outcome_history(rule.name, limit=SHOWN)
    counted = [o for _, o, at in history if restored is None or at > restored]
    judged = [o for o in counted if o in JUDGED]
    ms = rule.min_success
    if ms is not None:
        judged = judged[: ms.of_last]
    verified = sum(1 for o in judged if o == VerifyOutcome.VERIFIED)
    why = state.demoted.get(rule.name, "")
    return RuleHealth(
        verify=rule.verify.describe(),
        outcomes=[o for _, o, _ in history],
        verified=verified,
        judged=len(judged),
        success_rate=verified / len(judged) if judged else None,
        min_success=None if ms is None else f"{ms.verified} of the last {ms.of_last}",
        demoted=bool(why),
        demoted_reason=why,
        restored_at=restored,
    )
