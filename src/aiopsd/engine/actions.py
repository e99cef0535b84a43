"""Action kinds: one model per kind, and the one registry every other list is derived from.

A kind is a frozen model whose ``kind`` is also the YAML key that names it
(``action: {notify: {...}}``). It says what the engine needs to know about it:
``needs_targets`` (nothing runs without a host), :meth:`~ActionSpec.describe` (what the
status page says it does), :meth:`~ActionSpec.check` (its part of the guards, when
deciding) and :meth:`~ActionSpec.check_refs` (what it names must exist, when loading).

:data:`ACTIONS` maps kind -> model. The rule's action union, the loader's error text,
the field paths it reports and the page's wording are derived from it; the executors
(:data:`aiopsd.actions.executors.EXECUTORS`) have the same keys. A new kind is its
model here, its executor in ``actions/``, and one entry in each registry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, Discriminator, Field, Tag, computed_field, field_validator, model_validator

from aiopsd.durations import PositiveDuration
from aiopsd.engine.targets import render_targets
from aiopsd.engine.templating import check_template, render
from aiopsd.models import Frozen, SkipReason

Skip = tuple[SkipReason, str]


@dataclass(frozen=True)
class Refs:
    """What the loader can check an action's names against (None: not checked)."""

    playbooks_dir: Path | None = None
    # The config's notify channel names.
    channels: Collection[str] | None = None


class ActionSpec(Frozen):
    """The contract of one action kind (subclasses set ``kind`` to a Literal of their key)."""

    kind: str
    # True: the action runs on hosts and is skipped ``no_targets`` when its targets render empty.
    needs_targets: ClassVar[bool] = False

    @classmethod
    def key(cls) -> str:
        """The kind's name: its registry key and its key in a rule's ``action:``."""
        return str(cls.model_fields["kind"].default)

    def describe(self) -> str:
        """What this action does, in a few words (the status page's rule list)."""
        return self.kind

    @classmethod
    def describe_run(cls, action: Mapping[str, Any]) -> str:
        """The same for a decided run, from its rendered parameters (the page's action list)."""
        return cls.key()

    def target_source(self) -> str | list[str] | None:
        """The field naming the hosts the action touches, as written (None: it touches none)."""
        return None

    def render(self, context: dict[str, Any]) -> dict[str, Any]:
        """The action's parameters with their templates rendered once, for this finding."""
        out: dict[str, Any] = render(self.model_dump(mode="json"), context)
        return out

    def bind(self, action: dict[str, Any], hosts: Sequence[str], ports: Mapping[str, int]) -> dict[str, Any]:
        """Put the checked hosts back into the rendered action (ports for an inventory)."""
        if ports:
            action["target_ports"] = dict(ports)
        return action

    def prepare(self, context: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The checked targets and the rendered action; raises UnsafeTarget for a host pattern."""
        hosts, ports = render_targets(self.target_source(), context)
        return hosts, self.bind(self.render(context), hosts, ports)

    def check(self, targets: Sequence[str], *, max_hosts: int | None) -> Skip | None:
        """This kind's guards on the rendered targets: why not to act, or None."""
        if self.needs_targets and not targets:
            return SkipReason.NO_TARGETS, "no targets: the targets template rendered empty"
        if max_hosts is not None and len(targets) > max_hosts:
            return SkipReason.MAX_HOSTS, f"blast radius: {len(targets)} targets > max_hosts {max_hosts}"
        return None

    def check_refs(self, refs: Refs) -> tuple[str, str] | None:
        """(field, message) when something the action names does not exist, checked at load."""
        return None


def _check_hosts(value: str | list[str] | None) -> str | list[str] | None:
    for item in [] if value is None else [value] if isinstance(value, str) else value:
        check_template(item)
    return value


class PlaybookAction(ActionSpec):
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

    needs_targets = True

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
        _check_hosts(value)
        return value

    def describe(self) -> str:
        return self.playbook

    @classmethod
    def describe_run(cls, action: Mapping[str, Any]) -> str:
        return str(action.get("playbook") or cls.key())

    def target_source(self) -> str | list[str] | None:
        return self.targets

    def render(self, context: dict[str, Any]) -> dict[str, Any]:
        """``template_vars`` stay as written: they are Ansible's to render, and rendering them here
        would put label data into text Ansible then evaluates as code."""
        data = self.model_dump(mode="json")
        verbatim = data.pop("template_vars", None)
        out: dict[str, Any] = render(data, context)
        if verbatim:
            out["template_vars"] = verbatim
        return out

    def check_refs(self, refs: Refs) -> tuple[str, str] | None:
        name = self.playbook
        if refs.playbooks_dir is not None and "{" not in name and not (refs.playbooks_dir / name).is_file():
            return "playbook", f"playbook {name!r} not found in {refs.playbooks_dir}"
        return None


class RetrainActionParams(Frozen):
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
    def _command(self) -> RetrainActionParams:
        if self.job == "command" and not self.command:
            raise ValueError("job 'command' needs a command list")
        return self


class RetrainAction(ActionSpec):
    kind: Literal["retrain"] = "retrain"
    retrain: RetrainActionParams

    def describe(self) -> str:
        return self.retrain.model_dir


class SilenceParams(Frozen):
    duration: PositiveDuration = 3600.0
    comment: str = "silenced by aiopsd"
    matchers: dict[str, str] | None = None


class SilenceAction(ActionSpec):
    kind: Literal["silence"] = "silence"
    silence: SilenceParams

    def describe(self) -> str:
        return self.silence.comment


# What a channel (or a log line) receives about the finding, rendered once with the rest of the action.
_FINDING_DATA = (
    "{{ {'id': finding.id, 'kind': kind, 'source': source, 'score': score, 'labels': labels, "
    "'status': finding.status, 'summary': finding.summary, 'starts_at': finding.starts_at} | tojson }}"
)


class NotifyParams(Frozen):
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


class NotifyAction(ActionSpec):
    kind: Literal["notify"] = "notify"
    notify: NotifyParams

    def describe(self) -> str:
        return self.notify.message

    def check_refs(self, refs: Refs) -> tuple[str, str] | None:
        channel = self.notify.channel
        if refs.channels is not None and channel is not None and channel not in refs.channels:
            known = ", ".join(sorted(refs.channels)) or "none configured"
            return "notify.channel", (f"notify channel {channel!r} is not in the config's notify_channels ({known})")
        return None


class JobTemplateParams(Frozen):
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
        return _check_hosts(value)


class JobTemplateAction(ActionSpec):
    kind: Literal["job_template"] = "job_template"
    job_template: JobTemplateParams

    def describe(self) -> str:
        return f"job template {self.job_template.id}"

    def target_source(self) -> str | list[str] | None:
        return self.job_template.limit

    def bind(self, action: dict[str, Any], hosts: Sequence[str], ports: Mapping[str, int]) -> dict[str, Any]:
        action = super().bind(action, hosts, ports)
        action["job_template"] = {**action["job_template"], "limit": ",".join(hosts) or None}
        return action

    def check(self, targets: Sequence[str], *, max_hosts: int | None) -> Skip | None:
        if max_hosts is not None and not targets:
            return SkipReason.MAX_HOSTS, (
                f"blast radius: no job_template.limit, so the job runs on its whole "
                f"inventory; max_hosts {max_hosts} cannot hold"
            )
        return super().check(targets, max_hosts=max_hosts)


class LogParams(Frozen):
    """Write one structured line (JSON) to the daemon's log: an audit mark for a log pipeline."""

    message: str
    level: Literal["info", "warning", "error"] = "info"
    # Extra fields of the line, templated like the message (values are data, never code).
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("message")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_template(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        for item in value.values():
            check_template(item)
        return value

    @computed_field  # type: ignore[prop-decorator]
    @property
    def finding_data(self) -> str:
        """Not settable: the finding's identity and labels as JSON, part of the line."""
        return _FINDING_DATA


class LogAction(ActionSpec):
    kind: Literal["log"] = "log"
    log: LogParams

    def describe(self) -> str:
        return self.log.message


ACTIONS: dict[str, type[ActionSpec]] = {
    "playbook": PlaybookAction,
    "retrain": RetrainAction,
    "silence": SilenceAction,
    "notify": NotifyAction,
    "job_template": JobTemplateAction,
    "log": LogAction,
}


def _action_kind(value: Any) -> str | None:
    """The kind of an action as written: its ``kind``, or the one registry key it has."""
    if isinstance(value, BaseModel):
        return str(getattr(value, "kind", None))
    if isinstance(value, dict):
        if "kind" in value:
            return str(value["kind"])
        found = [k for k in ACTIONS if k in value]
        return found[0] if len(found) == 1 else None
    return None


if TYPE_CHECKING:
    Action = ActionSpec
else:
    Action = Annotated[
        Union[tuple(Annotated[model, Tag(kind)] for kind, model in ACTIONS.items())],  # noqa: UP007
        Discriminator(
            _action_kind,
            custom_error_type="action_kind",
            custom_error_message=f"an action needs exactly one of: {', '.join(ACTIONS)}",
        ),
    ]
