"""Targets are literal host names, never Ansible host patterns.

A rendered target is accepted only as one of:

- a host name (RFC 1123 labels of letters, digits, ``-`` and ``_``, dot-separated, at most 253
  characters; compared case-insensitively, so it is lower-cased),
- an IPv4 or IPv6 address (written in its canonical, compressed form),
- a Prometheus ``instance`` value ``host:port`` or ``[ipv6]:port``: the port is split off and
  handed to Ansible as ``ansible_port``; the host alone is the target.

Anything else, a pattern character (``[ ] * ? ! & ~ , :``), a leading ``@``, whitespace, a
newline, a non-ASCII character, or the group names ``all`` / ``ungrouped``, is an
:class:`UnsafeTarget`: the engine records a skip with the code ``unsafe_target`` and
nothing runs. The canonical host is the key of the per-target lock and the cooldown, so
``DB-1``, ``db-1`` and ``db-1:2222`` are one host.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiopsd.engine.templating import render

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
# Ansible group names every inventory has: as a host or a limit they mean "every host".
RESERVED = frozenset({"all", "ungrouped"})
SHOWN = 80


class UnsafeTarget(ValueError):
    """A rendered target that is not one literal host."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int | None = None


def shown(value: str) -> str:
    """A hostile value as a log/status line can show it: repr'd (newlines, NULs visible) and cut."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[:SHOWN] + "...'"


def _port(raw: str, whole: str) -> int:
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 65536:
        raise UnsafeTarget(f"target {shown(whole)}: port {shown(raw)} is not a number 1-65535")
    return int(raw)


def _host(raw: str, whole: str) -> str:
    try:
        addr = ipaddress.ip_address(raw)
    except ValueError:
        addr = None
    if addr is not None:
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
            raise UnsafeTarget(f"target {shown(whole)}: IPv6 zone ids are not accepted")
        return addr.compressed
    host = raw.lower().removesuffix(".")
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise UnsafeTarget(f"target {shown(whole)} is not a host name, an IP address or host:port")
    if host in RESERVED:
        raise UnsafeTarget(f"target {shown(whole)} is an Ansible group name, not a host")
    return host


def parse_target(value: str) -> Target:
    """One rendered target as a literal host (and port), or :class:`UnsafeTarget`."""
    if value.startswith("["):  # [ipv6]:port, the only place brackets may appear
        inner, sep, rest = value[1:].partition("]")
        if not sep or not rest.startswith(":") or ":" not in inner:
            raise UnsafeTarget(f"target {shown(value)} looks like a host range or pattern")
        host = _host(inner, value)
        return Target(host, _port(rest[1:], value))
    if value.count(":") == 1:
        host_part, _, port_part = value.partition(":")
        host = _host(host_part, value)
        if ":" in host:
            raise UnsafeTarget(f"target {shown(value)} is not a host name, an IP address or host:port")
        return Target(host, _port(port_part, value))
    return Target(_host(value, value))


def parse_targets(values: Sequence[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Canonical hosts (deduplicated, in order) and the ports given with them.

    Raises :class:`UnsafeTarget` for the first value that is not a literal host, or when one
    host is given with two different ports.
    """
    hosts: list[str] = []
    ports: dict[str, int] = {}
    for value in values:
        target = parse_target(value)
        if target.port is not None:
            if ports.get(target.host, target.port) != target.port:
                raise UnsafeTarget(
                    f"target {target.host} is given with two ports ({ports[target.host]} and {target.port})"
                )
            ports[target.host] = target.port
        if target.host not in hosts:
            hosts.append(target.host)
    return tuple(hosts), ports


def _split_plain(raw: str | list[str]) -> list[tuple[str, bool]]:
    """(item, templated) pairs: a plain string written in the rule may list several hosts."""
    items = [raw] if isinstance(raw, str) else list(raw)
    out: list[tuple[str, bool]] = []
    for item in items:
        if "{" in item:
            out.append((item, True))
        else:
            out.extend((part, False) for part in item.replace(",", " ").split())
    return out


def render_targets(raw: str | list[str] | None, context: dict[str, Any]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Render a rule's ``targets`` (or ``job_template.limit``) into literal hosts and their ports.

    Every templated item must render to exactly one host (or to nothing, which drops it).
    Raises :class:`UnsafeTarget` otherwise.
    """
    if raw is None:
        return (), {}
    values: list[str] = []
    for item, templated in _split_plain(raw):
        value = str(render(item, context)) if templated else item
        if value:
            values.append(value)
    return parse_targets(values)
