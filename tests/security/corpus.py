"""Hostile label values, by class, and where each one is sent.

``CANARY`` in a value is replaced by a path unique to the value: if any template or shell
in it ever ran, that file appears. ``where`` is the label the value is put in:

- ``alertname``: the shipped ``diagnostics-on-alert`` rule renders it into the extra var
  ``incident``, which the shipped playbook uses (a file name, after sanitising). Expected:
  act, the playbook sees the literal characters.
- ``host``: the shipped rule's ``targets``. Expected: skip ``unsafe_target``, or act on the
  canonical literal host named in ``expect``.
- ``intake``: a value the store cannot hold. Expected: 422 naming the field, nothing stored.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Payload:
    klass: str
    value: str
    where: str
    expect: str = ""  # for "host": the canonical host it acts on, "" = unsafe_target


CORPUS: tuple[Payload, ...] = (
    # Jinja expressions, statements, comments, lookups: data, never evaluated.
    Payload("jinja", "Disk{{ lookup('pipe','id > CANARY') }}", "alertname"),  # the repro
    Payload("jinja", "{{ lookup('ansible.builtin.pipe', 'touch CANARY') }}", "alertname"),
    Payload("jinja", "{{ query('pipe', 'touch CANARY') }}", "alertname"),
    Payload("jinja", "{% set x = lookup('pipe', 'touch CANARY') %}x", "alertname"),
    Payload("jinja", "{% for i in lookup('pipe','touch CANARY') %}{% endfor %}", "alertname"),
    Payload("jinja", "{# comment #}{{ lookup('pipe','touch CANARY') }}", "alertname"),
    Payload("jinja", "{{ lookup('file', '/etc/passwd') }}", "alertname"),
    Payload("jinja", "{{ lookup('env', 'HOME') }}", "alertname"),
    Payload("jinja", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "alertname"),
    Payload("jinja", "{{ self.__init__.__globals__.__builtins__ }}", "alertname"),
    Payload("jinja", "{% raw %}{{ x }}{% endraw %}", "alertname"),
    Payload("jinja", "{{ omit }}", "alertname"),
    Payload("jinja", "{{{{ lookup('pipe','touch CANARY') }}}}", "alertname"),
    # ansible_* variable overrides, through the value.
    Payload("ansible_var", "{{ ansible_connection }}", "alertname"),
    Payload("ansible_var", "{{ hostvars['localhost'] }}", "alertname"),
    Payload("ansible_var", "x ansible_connection=local ansible_python_interpreter=/bin/sh", "alertname"),
    Payload("ansible_var", "ansible_shell_executable=/bin/touch", "alertname"),
    # YAML-looking text: a tag or a document marker in a value is just characters.
    Payload("yaml", "!!python/object/apply:os.system ['touch CANARY']", "alertname"),
    Payload("yaml", "!unsafe x", "alertname"),
    # Strings that YAML would read as another type if Ansible re-resolved them: stay strings.
    Payload("yaml", "true", "alertname"),
    Payload("yaml", "0123", "alertname"),
    Payload("yaml", "null", "alertname"),
    Payload("yaml", "1e3", "alertname"),
    Payload("yaml", "x\n---\nincident: {{ lookup('pipe','touch CANARY') }}", "alertname"),
    # Path traversal and absolute paths: never a file name outside diagnostics_dir.
    Payload("traversal", "../../../../../CANARY", "alertname"),
    Payload("traversal", "..", "alertname"),
    Payload("absolute", "CANARY", "alertname"),
    Payload("absolute", "/etc/cron.d/aiopsd-evil", "alertname"),
    # Newlines and control characters.
    Payload("newline", "Disk\nFull", "alertname"),
    Payload("newline", "Disk\r\n{{ lookup('pipe','touch CANARY') }}", "alertname"),
    Payload("control", "Disk\tFull\x1b[31m\x07", "alertname"),
    # Shell metacharacters: never interpreted (no shell sees them).
    Payload("shell", "$(touch CANARY)", "alertname"),
    Payload("shell", "`touch CANARY`", "alertname"),
    Payload("shell", "x; touch CANARY", "alertname"),
    Payload("shell", "x | touch CANARY && touch CANARY", "alertname"),
    Payload("shell", "'; touch CANARY; '", "alertname"),
    Payload("shell", '"; touch CANARY; "', "alertname"),
    Payload("argv", "--extra-vars=@/etc/passwd -e x=1", "alertname"),
    # Unicode: right-to-left override, non-ASCII; long (the store's 256 limit for alertname).
    Payload("unicode", "Disk\u202eLLUF\u00e9\u4e2d", "alertname"),
    Payload("long", "L" * 250, "alertname"),
    # Host patterns and ranges: refused, never expanded.
    Payload("pattern", "web[01:50].prod", "host"),
    Payload("pattern", "web*", "host"),
    Payload("pattern", "web?", "host"),
    Payload("pattern", "all", "host"),
    Payload("pattern", "ungrouped", "host"),
    Payload("pattern", "!localhost", "host"),
    Payload("pattern", "&localhost", "host"),
    Payload("pattern", "~local.*", "host"),
    Payload("pattern", "localhost:&other", "host"),
    Payload("pattern", "localhost,evil", "host"),
    Payload("pattern", "localhost evil", "host"),
    Payload("pattern", "localhost\nevil", "host"),
    Payload("pattern", "@CANARY", "host"),
    Payload("pattern", "localhost ansible_connection=local", "host"),
    Payload("pattern", "{{ lookup('pipe','touch CANARY') }}", "host"),
    Payload("traversal", "../../etc/passwd", "host"),
    Payload("absolute", "CANARY", "host"),
    Payload("shell", "$(touch CANARY)", "host"),
    Payload("long", "h" * 5000, "host"),
    Payload("port", "localhost:99999", "host"),
    # Literal hosts, in forms Ansible must see canonically: they act.
    Payload("port", "127.0.0.1:2222", "host", expect="127.0.0.1"),
    Payload("port", "[::1]:9100", "host", expect="::1"),
    Payload("case", "LocalHost.", "host", expect="localhost"),
    # Values the store cannot hold: 422 at intake.
    Payload("nul", "Disk\x00Full", "intake"),
    Payload("nul", "localhost\x00evil", "intake"),
    Payload("non_utf8", "Disk\udcff", "intake"),
    Payload("long", "A" * 300, "intake"),
)
