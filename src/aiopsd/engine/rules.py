"""Remediation rules: the YAML schema, validated the moment a file is loaded."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from aiopsd.durations import Duration, PositiveDuration
from aiopsd.models import FindingKind

_TEMPLATES = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def check_template(value: str) -> str:
    try:
        _TEMPLATES.parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"bad template {value!r}: {exc.message}") from None
    return value


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render ``{{ labels.x }}`` templates in strings, recursively through lists and dicts."""
    if isinstance(value, str):
        return _TEMPLATES.from_string(value).render(**context) if "{" in value else value
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value


def render_action(action: BaseModel, context: dict[str, Any]) -> dict[str, Any]:
    """The action's parameters with templates rendered; ``template_vars`` stay as written.

    ``template_vars`` are Ansible's to render (see :class:`PlaybookAction`): rendering them
    here would put label data into text Ansible then evaluates as code.
    """
    data = action.model_dump(mode="json")
    verbatim = data.pop("template_vars", None)
    out: dict[str, Any] = render(data, context)
    if verbatim:
        out["template_vars"] = verbatim
    return out


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class LabelMatcher(Strict):
    """``value`` equality, ``~regex`` full match, ``!value`` / ``!~regex`` negation."""

    negate: bool
    regex: re.Pattern[str] | None
    value: str

    @classmethod
    def parse(cls, raw: str) -> LabelMatcher:
        negate = raw.startswith("!")
        body = raw[1:] if negate else raw
        if body.startswith("~"):
            try:
                return cls(negate=negate, regex=re.compile(body[1:]), value=body[1:])
            except re.error as exc:
                raise ValueError(f"bad regex {body[1:]!r}: {exc}") from None
        return cls(negate=negate, regex=None, value=body)

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            hit = False
        elif self.regex is not None:
            hit = self.regex.fullmatch(actual) is not None
        else:
            hit = actual == self.value
        return hit != self.negate


def check_matchers(value: dict[str, str]) -> dict[str, str]:
    """Every matcher of a labels map parses (a bad regex is a ValueError naming it)."""
    for raw in value.values():
        LabelMatcher.parse(str(raw))
    return value


# A labels map of matchers, as rules, maintenance windows and fixtures write them.
Matchers = Annotated[dict[str, str], AfterValidator(check_matchers)]


class Match(Strict):
    kind: FindingKind | None = None
    source: str | None = None
    labels: Matchers = Field(default_factory=dict)
    min_score: float | None = None

    def matchers(self) -> dict[str, LabelMatcher]:
        return {k: LabelMatcher.parse(v) for k, v in self.labels.items()}


class ForCount(Strict):
    """Fire when the finding was seen ``count`` times within ``window``."""

    count: int = Field(ge=1)
    window: PositiveDuration


class RateBudget(Strict):
    count: int = Field(ge=1)
    window: PositiveDuration


class CircuitBreaker(Strict):
    failures: int = Field(default=3, ge=1)
    reset_after: PositiveDuration = 3600.0


class Guards(Strict):
    cooldown: Duration = 0.0
    max_per_window: RateBudget | None = None
    max_hosts: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    timeout: PositiveDuration = 600.0
    retries: int = Field(default=0, ge=0, le=10)
    retry_backoff: Duration = 10.0
    require_approval: bool = False
    dry_run: bool = False
    circuit_breaker: CircuitBreaker = CircuitBreaker()
    # Data older than this (seconds since the finding was last seen) is never acted on.
    stale_after: PositiveDuration = 900.0


class PlaybookAction(Strict):
    """Run a playbook from ``playbooks_dir`` on the rendered targets.

    ``targets``: a list, each item rendering to exactly one literal host (see
    :mod:`aiopsd.engine.targets`), or one string: a templated string renders to one host,
    a plain string may name several, separated by commas or spaces.
    ``extra_vars`` are rendered by aiopsd and reach Ansible as literal data (``!unsafe``):
    Ansible never evaluates them. ``template_vars`` is the explicit opt-in for values Ansible
    must template (``"{{ lookup('env', 'HOME') }}/x"``): aiopsd passes them as written, never
    renders labels into them, and ``aiopsd check`` warns about every rule that uses them.
    """

    kind: Literal["playbook"] = "playbook"
    playbook: str
    targets: str | list[str] = "localhost"
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    template_vars: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint_vars(self) -> PlaybookAction:
        both = sorted(set(self.extra_vars) & set(self.template_vars))
        if both:
            raise ValueError(f"a variable is either in extra_vars or in template_vars, not both: {', '.join(both)}")
        return self

    @field_validator("playbook")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("playbook must be a path inside playbooks_dir (no '/' prefix, no '..')")
        return check_template(value)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: str | list[str]) -> str | list[str]:
        for item in [value] if isinstance(value, str) else value:
            check_template(item)
        return value


class RetrainParams(Strict):
    """Retrain the model in ``model_dir`` on recent labelled rows; promote only through the gate.

    The defaults point at what a drift finding carries: the drifted window (with
    its labels) saved as CSV, the reference, and the prediction log's model_dir.
    """

    model_dir: str = "{{ finding.details.model_dir }}"
    # The prediction log's model: its model_store (e.g. MLflow), when it has one, wins over model_dir.
    model: str = "{{ finding.details.model }}"
    job: Literal["sklearn", "command"] = "sklearn"
    command: list[str] | None = None
    data: str = "{{ finding.details.window_csv }}"
    label: str = "label"
    # Also train on the reference rows (the candidate then learns old and new data).
    include_reference: bool = False
    reference: str = "{{ finding.details.reference_csv }}"
    min_improvement: float = 0.0
    holdout: float = Field(default=0.25, gt=0.0, lt=1.0)

    @field_validator("model_dir", "data", "reference")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_template(value)

    @model_validator(mode="after")
    def _command(self) -> RetrainParams:
        if self.job == "command" and not self.command:
            raise ValueError("job 'command' needs a command list")
        return self


class RetrainAction(Strict):
    kind: Literal["retrain"] = "retrain"
    retrain: RetrainParams


class SilenceParams(Strict):
    duration: PositiveDuration = 3600.0
    comment: str = "silenced by aiopsd"
    matchers: dict[str, str] | None = None


class SilenceAction(Strict):
    kind: Literal["silence"] = "silence"
    silence: SilenceParams


# What a notify channel receives about the finding, rendered once with the rest of the action.
_FINDING_DATA = ("{{ {'id': finding.id, 'kind': kind, 'source': source, 'score': score, 'labels': labels, "
                 "'status': finding.status, 'summary': finding.summary, 'starts_at': finding.starts_at} | tojson }}")


class NotifyParams(Strict):
    """Tell people: ``channel`` names one of the config's ``notify_channels`` (none: a log line only)."""

    message: str
    channel: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9_.-]+$")
    title: str = "{{ kind }} on {{ source }}{{ ': ' ~ finding.summary if finding.summary else '' }}"
    # PagerDuty's event_action; other channels pass it on ("resolve" fits an on_resolved notify).
    event: Literal["trigger", "resolve"] = "trigger"
    severity: Literal["critical", "error", "warning", "info"] = "warning"
    # Same finding, same key: a re-sent trigger updates one PagerDuty alert, a resolve closes it.
    dedup_key: str = "aiopsd-{{ finding.id }}"

    @field_validator("message", "title", "dedup_key")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_template(value)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def finding_data(self) -> str:
        """Not settable: the finding's identity and labels as JSON, for channels that send structured data."""
        return _FINDING_DATA


class NotifyAction(Strict):
    kind: Literal["notify"] = "notify"
    notify: NotifyParams


class JobTemplateParams(Strict):
    """An AWX / Ansible Automation Platform job template, launched through its REST API."""

    # Numeric id, or AWX's named URL (e.g. "restart-api++Default").
    id: int | str
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    # The hosts the job may touch, e.g. "{{ labels.instance }}": literal hosts like targets
    # (never a pattern), sent to AWX as a comma-separated limit and counted by max_hosts.
    limit: str | list[str] | None = None

    @field_validator("limit")
    @classmethod
    def _template(cls, value: str | list[str] | None) -> str | list[str] | None:
        for item in [] if value is None else [value] if isinstance(value, str) else value:
            check_template(item)
        return value


class JobTemplateAction(Strict):
    kind: Literal["job_template"] = "job_template"
    job_template: JobTemplateParams


_ACTION_KEYS = ("playbook", "retrain", "silence", "notify", "job_template")


def _action_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", None))
    if isinstance(value, dict):
        if "kind" in value:
            return str(value["kind"])
        found = [k for k in _ACTION_KEYS if k in value]
        return found[0] if len(found) == 1 else None
    return None


Action = Annotated[
    Annotated[PlaybookAction, Tag("playbook")]
    | Annotated[RetrainAction, Tag("retrain")]
    | Annotated[SilenceAction, Tag("silence")]
    | Annotated[NotifyAction, Tag("notify")]
    | Annotated[JobTemplateAction, Tag("job_template")],
    Discriminator(_action_kind, custom_error_type="action_kind",
                  custom_error_message="an action needs exactly one of: playbook, retrain, silence, notify, "
                                       "job_template"),
]


class Rule(Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]+$")
    description: str = ""
    enabled: bool = True
    match: Match
    for_: Duration | ForCount = Field(default=0.0, alias="for")
    action: Action
    on_resolved: Action | None = None
    guards: Guards = Guards()
    # A finding skipped for a maintenance window or a silence: act once that ends if it still fires, or drop it.
    after_maintenance: Literal["act", "drop"] = "act"

    @field_validator("for_")
    @classmethod
    def _count_needs_data(cls, value: float | ForCount, info: ValidationInfo) -> float | ForCount:
        # An alert's "sightings" would be Alertmanager's notification schedule (group_interval,
        # repeat_interval, HA peers), not evidence: a count rule on alerts would act or not by chance.
        match = info.data.get("match")
        if isinstance(value, ForCount) and isinstance(match, Match) and \
                match.kind not in (FindingKind.ANOMALY, FindingKind.DRIFT):
            raise ValueError("for: {count, window} needs match.kind anomaly or drift (alert findings have no "
                             "sightings to count: use a duration, e.g. for: 5m, or the alert rule's own for:)")
        return value


class RuleFile(Strict):
    rules: list[Rule] = Field(default_factory=list)
