"""The agent's `validate` output -> (file, line, message) findings, and a message -> the blocker it
stands for ("unsupported module include_vars", "unsupported task keyword until", ...), so that the
same gap counted over many roles ranks by how many entries it blocks."""
from __future__ import annotations

import re
from dataclasses import dataclass

# "error: roles/nginx/tasks/main.yml:4: unsupported module `include_vars`"  (also "warning:")
LINE_RE = re.compile(r"^(?P<level>error|warning)(?:\[[^\]]*\])?: (?:(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? )?(?P<msg>.*)$")


@dataclass
class Finding:
    level: str          # "error" or "warning"
    file: str | None
    line: int | None
    message: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file else ""


def parse(output: str) -> list[Finding]:
    out = []
    for raw in output.splitlines():
        m = LINE_RE.match(raw.strip())
        if m:
            out.append(Finding(m["level"], m["file"], int(m["line"]) if m["line"] else None, m["msg"].strip()))
    return out


_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"unsupported module `(?:ansible\.builtin\.|ansible\.legacy\.)?([^`]+)`"), "unsupported module {0}"),
    (re.compile(r"unsupported argument `([^`]+)` for module `([^`]+)`"), "unsupported argument {1}: {0}"),
    (re.compile(r"unsupported loop `([^`]+)`"), "unsupported loop {0}"),
    (re.compile(r"key `([^`]+)`: conflicting action statements"),
     "unsupported task keyword {0}"),
    (re.compile(r"unsupported (play|task|block|role|handler) keyword `([^`]+)`"), "unsupported {0} keyword {1}"),
    (re.compile(r"\b(filter|test|function|lookup|method) `?([\w.]+)`? is unknown"), "{0} {1}"),
    (re.compile(r"unknown (?:filter|test|function|lookup)[^`]*`([^`]+)`"), None),
    (re.compile(r"unsupported meta action `([^`]+)`"), "unsupported meta {0}"),
    (re.compile(r"unsupported `([^`]+)` argument `([^`]+)`"), "unsupported argument {0}: {1}"),
    (re.compile(r"unsupported `loop_control` key `([^`]+)`"), "unsupported loop_control {0}"),
    (re.compile(r"role `([^`.]+\.[^`.]+\.[^`]+)` not found"), "collection role reference (FQCN) {0}"),
    (re.compile(r"role `([^`]+)` not found"), "role not found: {0}"),
    (re.compile(r"no handler named or listening to"), "notify: handler not found (in an imported/collection role)"),
    (re.compile(r"`([a-z_]+)` must be a boolean \(templated"), "templated keyword {0}"),
    (re.compile(r"^`([a-z_]+)` other than"), "{0} other than root"),
    (re.compile(r"^module `([^`]+)` needs one of"), "module {0}: required argument missing"),
    (re.compile(r"unknown loop `([^`]+)`"), "unsupported loop {0}"),
    (re.compile(r"^`([^`]+)` is not supported"), "{0} is not supported"),
    (re.compile(r"key `([^`]+)`: invalid condition: (syntax error: [^\"`]*?)(?: in expression|$)"), "{0}: template {1}"),
    (re.compile(r"(?:filter|test) `([^`]+)`"), None),
]


def normalise(msg: str) -> str:
    """The blocker a message stands for: keeps the construct's name (module, keyword, filter),
    drops what is particular to one role (values, handler names, file names)."""
    for rx, fmt in _RULES:
        m = rx.search(msg)
        if m:
            if fmt is None:   # filters, tests, lookups: "filter NAME" / "test NAME" as the message says
                kind = re.search(r"\b(filter|test|function|lookup)\b", msg)
                return f"{kind.group(1) if kind else 'template'} {m.group(1)}"
            return fmt.format(*m.groups())
    s = re.sub(r"`[^`]*`", "`…`", msg)
    s = re.sub(r"'[^']*'", "'…'", s)
    s = re.sub(r"\d+", "N", s)
    return s[:120]
