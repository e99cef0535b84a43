"""Rules as data and a pure engine that turns findings into decisions."""

from aiopsd.engine.evaluate import EngineState, evaluate, matches, render_targets
from aiopsd.engine.loader import load_rule_file, load_rules
from aiopsd.engine.rules import Guards, Match, Rule

__all__ = [
    "EngineState",
    "Guards",
    "Match",
    "Rule",
    "evaluate",
    "load_rule_file",
    "load_rules",
    "matches",
    "render_targets",
]
