#!/usr/bin/env python3
"""The real-world corpus runner (see README.md beside this file).

    run.py validate [--sources DIR] [--only NAME ...] [--kind pypi|github]
    run.py converge [--sources DIR] [--only NAME ...]      # root: systemd-nspawn containers
    run.py all      [--sources DIR]                         # both, one report

validate: `gitops-agent validate` (GITOPS_AGENT_BIN) over every entry -> a table (entry, result,
first error) and the blockers ranked by how many entries each blocks.
converge: for the allowlisted entries that validate, two fresh Debian 12 containers, one converged
by ansible-playbook -c local, one by the agent; files, packages, users/groups, enabled units are
compared and each side is run a second time (it must change nothing).
Both write target/realworld/report.md and report.json, and print the report.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "lib"))

import blockers  # noqa: E402
import corpus  # noqa: E402


def agent_bin() -> Path:
    return Path(os.environ.get("GITOPS_AGENT_BIN", corpus.REPO / "target" / "debug" / "gitops-agent"))


@dataclass
class Row:
    name: str
    origin: str
    licence: str
    validate: str = "-"              # ok | fail | absent | error
    first_error: str = ""
    errors: list[str] = field(default_factory=list)      # normalised blockers (distinct)
    n_errors: int = 0
    n_warnings: int = 0
    converge: str = "-"             # same | differs | agent-failed | ansible-failed | not-allowed | blocked | skipped
    converge_note: str = ""
    idempotent: str = "-"           # agent's second run: "0 changed" / "N changed"
    diffs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # validate: unsupported module tasks the bridge to ansible-core would run (`ansible_modules: auto`)
    n_bridgeable: int = 0
    # converge, the agent's first run: tasks that ran natively / through ansible-core (`via: ansible`)
    tasks_native: int | None = None
    tasks_via_ansible: int | None = None


# --------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------
def validate_entry(m: corpus.Manifest, e: corpus.Entry, sources: Path | None, row: Row) -> Path | None:
    try:
        d = corpus.materialise(m, e, sources)
    except corpus.SourceAbsent as x:
        row.validate, row.first_error = "absent", f"source absent: {x}"
        return None
    except Exception as x:  # noqa: BLE001 - a broken source is a row of its own, not a crash of the run
        row.validate, row.first_error = "error", f"materialise: {x}"
        return None
    argv = [str(agent_bin()), "validate", "--playbook-dir", str(d), "--playbook", e.playbook,
            "--host-name", "localhost"]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    if p.returncode != 0 and re.search(r"role `[^`.]+\.[^`.]+\.[^`]+` not found", p.stderr):
        # The role names collection roles: validate again with the collections beside the playbook,
        # as the converge comparison gives them to ansible-core (not copied up front: most entries
        # do not need them and the debops collection alone is 25 MB).
        corpus.add_collections(m, e, d, sources)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    row.seconds = time.monotonic() - t0
    found = blockers.parse(p.stderr + "\n" + p.stdout)
    errs = [f for f in found if f.level == "error"]
    row.n_errors, row.n_warnings = len(errs), sum(1 for f in found if f.level == "warning")
    via = re.search(r"(\d+) of them via ansible", p.stdout)
    row.n_bridgeable = int(via.group(1)) if via else 0
    seen: list[str] = []
    for f in errs:
        b = blockers.normalise(f.message)
        if b not in seen:
            seen.append(b)
    row.errors = seen
    if p.returncode == 0:
        row.validate = "ok"
    else:
        row.validate = "fail"
        if errs:
            row.first_error = f"{errs[0].where}: {errs[0].message}" if errs[0].where else errs[0].message
        else:
            tail = (p.stderr.strip() or p.stdout.strip()).splitlines()
            row.first_error = f"rc={p.returncode}: {tail[-1] if tail else '(no output)'}"
            row.errors = [blockers.normalise(tail[-1]) if tail else f"exit {p.returncode}"]
    return d


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------
def _cell(s: str, n: int = 110) -> str:
    s = s.replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= n else s[: n - 1] + "…"


def ranked_blockers(rows: list[Row]) -> list[tuple[str, int, list[str]]]:
    """(blocker, entries it blocks, those entries) over the entries that failed validate."""
    by: dict[str, list[str]] = collections.defaultdict(list)
    for r in rows:
        if r.validate == "fail":
            for b in r.errors:
                by[b].append(r.name)
    return sorted(((b, len(n), n) for b, n in by.items()), key=lambda x: (-x[1], x[0]))


def report(rows: list[Row], agent: Path, did_converge: bool) -> str:
    ran = [r for r in rows if r.validate in ("ok", "fail", "error")]
    ok = [r for r in rows if r.validate == "ok"]
    absent = [r for r in rows if r.validate == "absent"]
    lines = [f"# Real-world corpus: {len(rows)} entries", "",
             f"agent: `{agent}`  ", f"date: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", "",
             f"- **validate: {len(ok)} of {len(ran)} pass** ({len(absent)} skipped: source absent)"]
    by_kind = collections.Counter((r.origin.startswith("PyPI"), r.validate) for r in rows)
    lines.append(f"  - PyPI entries: {by_kind[(True, 'ok')]} of "
                 f"{sum(v for (k, s), v in by_kind.items() if k and s != 'absent')} pass; "
                 f"GitHub entries: {by_kind[(False, 'ok')]} of "
                 f"{sum(v for (k, s), v in by_kind.items() if not k and s != 'absent')} pass")
    lines.append(f"  - unsupported module tasks of the passing entries that run through ansible-core with "
                 f"`ansible_modules: auto`: {sum(r.n_bridgeable for r in ok)} "
                 f"(in {sum(1 for r in ok if r.n_bridgeable)} entries)")
    if did_converge:
        conv = [r for r in rows if r.converge not in ("-", "not-allowed")]
        same = [r for r in conv if r.converge == "same"]
        idem = [r for r in same if r.idempotent == "0 changed"]
        lines.append(f"- **converge: {len(same)} of {len(conv)} allowlisted entries end in the same state as "
                     f"ansible-core** ({len(idem)} of those change nothing on the second run)")
        cnt = collections.Counter(r.converge for r in conv)
        lines.append("  - " + ", ".join(f"{k}: {v}" for k, v in sorted(cnt.items())))
        counted = [r for r in conv if r.tasks_native is not None]
        lines.append(f"  - agent tasks run (first run, allowlisted entries): "
                     f"{sum(r.tasks_native for r in counted)} native, "
                     f"{sum(r.tasks_via_ansible for r in counted)} via ansible-core"
                     + (" (bridge on: `ansible_modules: auto`)" if os.environ.get("GITOPS_REALWORLD_BRIDGE") else
                        " (bridge off)"))
    lines += ["", "## Table", "",
              "| entry | origin | licence | validate | errors | via ansible (validate) | converge | "
              "tasks native / via ansible | 2nd run (agent) | first error / note |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        note = r.first_error or r.converge_note
        if r.converge_note and r.first_error:
            note = f"{r.first_error} — {r.converge_note}"
        counts = "" if r.tasks_native is None else f"{r.tasks_native} / {r.tasks_via_ansible}"
        lines.append(f"| {r.name} | {_cell(r.origin, 40)} | {_cell(r.licence, 24)} | {r.validate} | "
                     f"{r.n_errors or ''} | {r.n_bridgeable or ''} | {r.converge} | {counts} | {r.idempotent} | "
                     f"{_cell(note)} |")
    lines += ["", "## Blockers, ranked by entries blocked", "",
              "| # | blocker | entries | examples |", "|---|---|---|---|"]
    for i, (b, n, names) in enumerate(ranked_blockers(rows), 1):
        ex = ", ".join(names[:4]) + (", …" if len(names) > 4 else "")
        lines.append(f"| {i} | {_cell(b, 90)} | {n} | {_cell(ex, 90)} |")
    diffs = [r for r in rows if r.diffs]
    if diffs:
        lines += ["", "## Converge differences (ansible-core vs agent, first lines)", ""]
        for r in diffs:
            lines.append(f"### {r.name} ({r.converge})")
            lines.append("```")
            lines += r.diffs[:40]
            if len(r.diffs) > 40:
                lines.append(f"... {len(r.diffs) - 40} more")
            lines.append("```")
    return "\n".join(lines) + "\n"


def write_report(rows: list[Row], did_converge: bool, out: Path | None = None) -> str:
    out = out or corpus.OUT
    out.mkdir(parents=True, exist_ok=True)
    text = report(rows, agent_bin(), did_converge)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return text


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def select(m: corpus.Manifest, only: list[str] | None, kind: str | None) -> list[corpus.Entry]:
    out = []
    for e in m.entries:
        if only and e.name not in only:
            continue
        if kind and m.sources[e.source]["kind"] != kind:
            continue
        out.append(e)
    return out


def run(cmd: str, sources: Path | None, only=None, kind=None, quiet=False, even_if_invalid=False) -> list[Row]:
    m = corpus.load()
    entries = select(m, only, kind)
    rows: list[Row] = []
    dirs: dict[str, Path | None] = {}
    for e in entries:
        row = Row(e.name, corpus.origin_of(m, e), corpus.licence_of(m, e))
        dirs[e.name] = validate_entry(m, e, sources, row)
        if not quiet:
            print(f"validate {e.name:40} {row.validate:6} {row.first_error[:100]}", file=sys.stderr, flush=True)
        rows.append(row)
    did_converge = cmd in ("converge", "all")
    if did_converge:
        import converge  # noqa: PLC0415 - needs root and the container tier; only loaded here
        converge.converge_all(m, entries, rows, dirs, sources, quiet=quiet, even_if_invalid=even_if_invalid)
    text = write_report(rows, did_converge)
    if not quiet:
        print(text)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["validate", "converge", "all"])
    ap.add_argument("--sources", type=Path, default=corpus.default_sources_dir(),
                    help="directory holding the GitHub checkouts (owner/name, owner+name, or owner+name/repo "
                         "git dirs); default $GITOPS_REALWORLD_SOURCES; without it GitHub entries are skipped")
    ap.add_argument("--only", nargs="*", help="entry names")
    ap.add_argument("--kind", choices=["pypi", "github"], help="only entries of this kind of source")
    ap.add_argument("--ansible-modules", action="store_true",
                    help="converge with the agent's bridge to ansible-core on (ansible_modules: auto, the test "
                         "venv's python bound into the agent's container); sets GITOPS_REALWORLD_BRIDGE=1")
    ap.add_argument("--even-if-invalid", action="store_true",
                    help="converge allowlisted entries also when validate fails (shows ansible-core's side)")
    a = ap.parse_args(argv)
    if a.ansible_modules:
        os.environ["GITOPS_REALWORLD_BRIDGE"] = "1"
    if not agent_bin().exists():
        print(f"agent binary {agent_bin()} not found (cargo build, or set GITOPS_AGENT_BIN)", file=sys.stderr)
        return 2
    run(a.command, a.sources, a.only, a.kind, even_if_invalid=a.even_if_invalid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
