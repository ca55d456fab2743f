"""Bad input tier (agent only).

Each case builds a small repository in a temp dir, pre-populates a scratch root, runs
`gitops-agent converge` and asserts:
  * the exit code (3 = invalid input found at validation, 1 = a task failed at run time),
  * stderr names the file and the line (and the offending key where there is one),
  * the scratch root is byte-for-byte as it was (content, modes, owners, mtimes, inodes),
  * nothing outside the root that the playbook points at was touched.

Every "invalid" case puts a task that WOULD change the root before the bad one, so a
validate-then-run agent leaves the root alone and a run-as-you-parse agent is caught.

What ansible-core 2.19 does with the same inputs (for the record; the agent is stricter on purpose):
  * src escaping the repository (../../x, /etc/passwd, a symlink in files/): Ansible copies it.
  * dest is a symlink to a file outside the root: copy and template REPLACE the link by a regular
    file (follow=no); lineinfile and blockinfile WRITE THROUGH the link into the outside file;
    file (mode/owner) follows the link and changes the outside file.
    The agent must never write through: it either fails clearly or replaces the link.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import harness
from harness import snapshot_exact, tree_diff

PRE = "- name: a change that must not happen before validation fails\n  copy:\n    content: \"changed\\n\"\n    dest: \"{{ root }}/existing.conf\"\n"


def _play(tasks: str, head: str = "", pre: bool = True) -> str:
    """A play whose first task would change the root (when pre) -- so errors that can be found
    before running anything must be found before running anything."""
    return ("- hosts: localhost\n  gather_facts: false\n" + head + "  tasks:\n"
            + textwrap.indent((PRE if pre else "") + tasks, "    "))


@dataclass
class Case:
    name: str
    files: dict[str, str]
    rc: tuple[int, ...]                     # acceptable exit codes
    file: str                               # file that must be named on stderr
    line: int | tuple[int, ...] | None      # line(s) that may be named (1-based)
    keys: tuple[str, ...] = ()              # words that must appear on stderr
    symlinks: dict[str, str] = field(default_factory=dict)   # repo-relative link -> target ({outside} expanded)
    root_links: dict[str, str] = field(default_factory=dict)  # root-relative link -> target
    outside_unchanged: bool = True
    may_replace_link: str | None = None     # root-relative path that may become a regular file instead
    xfail: str | None = None                # policy question rather than a hard requirement
    inventory: str | None = None            # --inventory FILE (repo-relative)
    bridge: str | None = None               # --ansible-modules auto, with this python ("" = the venv's)


def line_of(text: str, needle: str) -> int:
    """1-based number of the LAST line containing needle (the bad part comes after the PRE task)."""
    found = [i for i, l in enumerate(text.splitlines(), 1) if needle in l]
    if not found:
        raise AssertionError(f"{needle!r} not in text")
    return found[-1]


CASES: list[Case] = []


def case(**kw):
    CASES.append(Case(**kw))


# --- invalid YAML -------------------------------------------------------------------------------
_bad_indent = _play('- name: bad indentation\n  copy:\n    content: "x"\n   dest: "{{ root }}/f"\n')
case(name="yaml-bad-indent", files={"site.yml": _bad_indent}, rc=(3,), file="site.yml",
     line=(line_of(_bad_indent, "   dest:"), line_of(_bad_indent, "   dest:") - 1,
           line_of(_bad_indent, "content: \"x\"")))

_colon = _play('- name: restart: nginx\n  debug:\n    msg: hi\n')
case(name="yaml-colon-in-unquoted-name", files={"site.yml": _colon}, rc=(3,), file="site.yml",
     line=line_of(_colon, "restart: nginx"))

_unclosed = _play('- name: unclosed quote\n  debug:\n    msg: "oops\n')
case(name="yaml-unclosed-quote", files={"site.yml": _unclosed}, rc=(3,), file="site.yml",
     line=tuple(range(line_of(_unclosed, 'msg: "oops'), len(_unclosed.splitlines()) + 2)))

_tabs = "- hosts: localhost\n  tasks:\n\t- debug: msg=tab\n"
case(name="yaml-tab-indent", files={"site.yml": _tabs}, rc=(3,), file="site.yml", line=3)

_role_bad = "- name: role task\n  copy:\n    content: [unclosed\n    dest: x\n"
case(name="yaml-invalid-in-role-tasks",
     files={"site.yml": _play("", head="  roles:\n    - broken\n"),
            "roles/broken/tasks/main.yml": _role_bad},
     rc=(3,), file="roles/broken/tasks/main.yml", line=(3, 4, 5))

case(name="yaml-invalid-group-vars",
     files={"site.yml": _play('- debug: msg={{ gv }}\n'), "group_vars/all.yml": "gv: [1, 2\nother: 3\n"},
     rc=(3,), file="group_vars/all.yml", line=(1, 2, 3))

# --- handlers ------------------------------------------------------------------------------------
# Ansible 2.19 refuses to notify a task inside an `include_tasks` handler (only the include itself
# can be notified); the agent refuses it at load, naming the notifying task.
_notify_inner = _play('- name: notifies a task inside an included handler file\n  copy:\n'
                      '    content: "x\\n"\n    dest: "{{ root }}/n"\n  notify: inner handler\n',
                      head="  handlers:\n    - name: included handlers\n"
                           "      include_tasks: handlers/inc.yml\n")
case(name="notify-task-inside-included-handlers",
     files={"site.yml": _notify_inner, "handlers/inc.yml": "- name: inner handler\n  debug: msg=x\n"},
     rc=(3,), file="site.yml",
     line=(line_of(_notify_inner, "- name: notifies"), line_of(_notify_inner, "notify: inner handler")),
     keys=("inner handler",))

# --- unknown module / argument / keyword ---------------------------------------------------------
# A module or argument the agent does not implement is not a load error (real roles carry tasks for
# other systems under `when`): the task fails when it RUNS, naming file, line and key. So these
# cases have no PRE task (a task before it runs) and exit 1; nothing after the failed task runs.
# (ansible-core refuses an unresolvable module name at load; an unknown argument fails at run.)
_unknown_mod = _play('- name: unknown module\n  frobnicate:\n    path: "{{ root }}/x"\n', pre=False)
case(name="unknown-module", files={"site.yml": _unknown_mod}, rc=(1,), file="site.yml",
     line=(line_of(_unknown_mod, "- name: unknown module"), line_of(_unknown_mod, "frobnicate:")),
     keys=("frobnicate",))

# Arguments of existing modules that the agent refuses when the task runs (issue 12): a reboot
# command of its own, an SSH key passphrase, raw with `environment`, `package` handing a dnf
# argument to apt (this tier runs on Debian). Nothing runs before them, nothing after.
for _name, _task, _key in [
    ("reboot-command", '- name: bad reboot\n  reboot:\n    reboot_command: /sbin/reboot\n', "reboot_command"),
    ("user-ssh-key-passphrase", '- name: bad key\n  user:\n    name: root\n    generate_ssh_key: true\n'
     '    ssh_key_file: "{{ root }}/k"\n    ssh_key_passphrase: secret\n', "ssh_key_passphrase"),
    ("raw-environment", '- name: bad raw\n  raw: touch "{{ root }}/x"\n  environment:\n    A: b\n', "environment"),
    ("package-dnf-argument-on-apt", '- name: bad package\n  package:\n    name: bash\n    state: present\n'
     '    use: apt\n    enablerepo: extras\n', "enablerepo"),
]:
    _t = _play(_task, pre=False)
    case(name=_name, files={"site.yml": _t}, rc=(1,), file="site.yml",
         line=(line_of(_t, "- name: bad"), line_of(_t, "- name: bad") + 1), keys=(_key,))

_unknown_fqcn = _play('- name: unknown fqcn\n  community.general.frobnicate: {}\n', pre=False)
case(name="unknown-module-fqcn", files={"site.yml": _unknown_fqcn}, rc=(1,), file="site.yml",
     line=(line_of(_unknown_fqcn, "- name: unknown fqcn"), line_of(_unknown_fqcn, "frobnicate")),
     keys=("frobnicate",))

_unknown_in_role = "- name: bad task\n  frobnicate: {}\n\n- name: after\n  copy: {content: x, dest: \"{{ root }}/after\"}\n"
case(name="unknown-module-in-role",
     files={"site.yml": _play("", head="  roles:\n    - r\n", pre=False), "roles/r/tasks/main.yml": _unknown_in_role},
     rc=(1,), file="roles/r/tasks/main.yml", line=(1, 2), keys=("frobnicate",))

_unknown_in_block = _play('- block:\n    - name: nested unknown\n      frobnicate: {}\n    - name: after\n'
                          '      copy: {content: x, dest: "{{ root }}/after"}\n', pre=False)
case(name="unknown-module-in-block", files={"site.yml": _unknown_in_block}, rc=(1,), file="site.yml",
     line=(line_of(_unknown_in_block, "- name: nested unknown"), line_of(_unknown_in_block, "frobnicate")),
     keys=("frobnicate",))

_unknown_in_import = "- name: imported bad\n  frobnicate: {}\n"
case(name="unknown-module-in-import_tasks",
     files={"site.yml": _play("- import_tasks: other.yml\n", pre=False), "other.yml": _unknown_in_import},
     rc=(1,), file="other.yml", line=(1, 2), keys=("frobnicate",))

# A `when` that holds: the task fails when run (stdout's "failed:"), not only the load warning.
_reached = _play("- name: packages the agent cannot install here\n  pacman: {name: vim}\n"
                 "  when: root is defined\n"
                 "- name: after\n  copy: {content: x, dest: \"{{ root }}/after\"}\n", pre=False)
case(name="unsupported-module-reached", files={"site.yml": _reached}, rc=(1,), file="site.yml",
     line=line_of(_reached, "pacman:"), keys=("pacman", "unsupported module", "failed:"))

_unknown_arg = _play('- name: unknown argument\n  copy:\n    content: "x"\n    dest: "{{ root }}/f"\n    colour: red\n', pre=False)
case(name="unknown-argument", files={"site.yml": _unknown_arg}, rc=(1,), file="site.yml",
     line=(line_of(_unknown_arg, "- name: unknown argument"), line_of(_unknown_arg, "colour: red"),
           line_of(_unknown_arg, "  copy:")),
     keys=("colour",))

_unknown_arg_kv = _play('- name: unknown kv argument\n  file: path={{ root }}/f state=directory colour=red\n', pre=False)
case(name="unknown-argument-kv", files={"site.yml": _unknown_arg_kv}, rc=(1,), file="site.yml",
     line=(line_of(_unknown_arg_kv, "- name: unknown kv"), line_of(_unknown_arg_kv, "colour=red")),
     keys=("colour",))

# --- keywords with no local meaning --------------------------------------------------------------
# become_user other than root: the agent runs as root; the task fails when it runs (not at load).
_become = _play("- name: as another user\n  copy: {content: x, dest: \"{{ root }}/x\"}\n"
                "  become: true\n  become_user: postgres\n"
                "- name: after\n  copy: {content: x, dest: \"{{ root }}/after\"}\n", pre=False)
case(name="become-user-not-root-reached", files={"site.yml": _become}, rc=(1,), file="site.yml",
     line=line_of(_become, "become_user: postgres"), keys=("become_user", "postgres"))

# A daemon cannot prompt: a vars_prompt whose variable is not given with -e.
_prompt = _play("- debug: msg={{ answer }}\n", head="  vars_prompt:\n    - name: answer\n      prompt: Answer?\n")
case(name="vars-prompt-without-extra-var", files={"site.yml": _prompt}, rc=(3,), file="site.yml",
     line=line_of(_prompt, "- name: answer"), keys=("vars_prompt", "answer", "-e"))

_group = _play("- debug: msg=x\n", head="  module_defaults:\n    group/aws:\n      region: x\n")
case(name="module-defaults-unknown-group", files={"site.yml": _group}, rc=(3,), file="site.yml",
     line=line_of(_group, "group/aws"), keys=("group/aws",))

_fire = _play("- name: fire and forget\n  command: sleep 1\n  async: 10\n  poll: 0\n", pre=False)
case(name="async-poll-0-reached", files={"site.yml": _fire}, rc=(1,), file="site.yml",
     line=line_of(_fire, "poll: 0"), keys=("poll",))

_tflag = _play("- name: templated flag\n  debug: msg=x\n  no_log: \"{{ 'maybe' }}\"\n", pre=False)
case(name="templated-flag-not-boolean", files={"site.yml": _tflag}, rc=(1,), file="site.yml",
     line=line_of(_tflag, "no_log:"), keys=("no_log", "maybe"))

# --- roles: meta/main.yml, argument_specs ----------------------------------------------------------
_spec = "argument_specs:\n  main:\n    options:\n      greeting:\n        type: str\n        required: true\n"
_role_task = "- name: role task\n  copy: {content: x, dest: \"{{ root }}/x\"}\n"
case(name="role-argument-spec-rejects",
     files={"site.yml": _play("", head="  roles:\n    - r\n", pre=False),
            "roles/r/meta/argument_specs.yml": _spec, "roles/r/tasks/main.yml": _role_task},
     rc=(1,), file="roles/r/meta/argument_specs.yml", line=2,
     keys=("missing required arguments: greeting",))

_spec_aliases = _spec + "        aliases: [hello]\n"
case(name="role-argument-spec-unchecked-construct",
     files={"site.yml": _play("", head="  roles:\n    - role: r\n      greeting: hi\n", pre=False),
            "roles/r/meta/argument_specs.yml": _spec_aliases, "roles/r/tasks/main.yml": _role_task},
     rc=(1,), file="roles/r/meta/argument_specs.yml", line=2, keys=("aliases", "argument_specs"))

case(name="role-meta-unknown-key",
     files={"site.yml": _play("", head="  roles:\n    - r\n"),
            "roles/r/meta/main.yml": "dependencies: []\ndepends_on: [other]\n", "roles/r/tasks/main.yml": _role_task},
     rc=(3,), file="roles/r/meta/main.yml", line=2, keys=("depends_on",))

case(name="role-dependency-not-found",
     files={"site.yml": _play("", head="  roles:\n    - r\n"),
            "roles/r/meta/main.yml": "dependencies:\n  - role: nowhere\n", "roles/r/tasks/main.yml": _role_task},
     rc=(3,), file="roles/r/meta/main.yml", line=2, keys=("nowhere",))

_bad_choice = _play('- name: bad state\n  file:\n    path: "{{ root }}/f"\n    state: sideways\n')
case(name="invalid-argument-value", files={"site.yml": _bad_choice}, rc=(3,), file="site.yml",
     line=(line_of(_bad_choice, "- name: bad state"), line_of(_bad_choice, "state: sideways"),
           line_of(_bad_choice, "  file:")),
     keys=("sideways",))

_missing_req = _play('- name: missing dest\n  copy:\n    content: "x"\n')
case(name="missing-required-argument", files={"site.yml": _missing_req}, rc=(3,), file="site.yml",
     line=(line_of(_missing_req, "- name: missing dest"), line_of(_missing_req, "  copy:"),
           line_of(_missing_req, "  copy:") + 1),
     keys=("dest",))

_play_kw = ("- hosts: localhost\n  gather_facts: false\n  colour: red\n  tasks:\n"
            + textwrap.indent(PRE, "    "))
case(name="unknown-play-keyword", files={"site.yml": _play_kw}, rc=(3,), file="site.yml",
     line=(1, line_of(_play_kw, "colour: red")), keys=("colour",))

_task_kw = _play('- name: typo keyword\n  debug: msg=x\n  whenn: true\n')
case(name="unknown-task-keyword", files={"site.yml": _task_kw}, rc=(3,), file="site.yml",
     line=(line_of(_task_kw, "- name: typo keyword"), line_of(_task_kw, "whenn")), keys=("whenn",))

_two_mods = _play('- name: two modules\n  copy:\n    content: x\n    dest: "{{ root }}/f"\n  file:\n    path: "{{ root }}/g"\n')
case(name="task-with-two-modules", files={"site.yml": _two_mods}, rc=(3,), file="site.yml",
     line=(line_of(_two_mods, "- name: two modules"), line_of(_two_mods, "  copy:"),
           line_of(_two_mods, "  file:")),
     keys=("copy", "file"))

_no_mod = _play('- name: no module at all\n  when: true\n')
case(name="task-without-module", files={"site.yml": _no_mod}, rc=(3,), file="site.yml",
     line=line_of(_no_mod, "- name: no module at all"))

# --- template errors ----------------------------------------------------------------------------
_tpl_task = _play('- name: render\n  template:\n    src: t.j2\n    dest: "{{ root }}/out.conf"\n')
_tpl_task_nopre = _play('- name: render\n  template:\n    src: t.j2\n    dest: "{{ root }}/out.conf"\n', pre=False)
case(name="template-undefined-variable",
     files={"site.yml": _tpl_task_nopre, "templates/t.j2": "line one\nline two\nvalue = {{ not_defined_anywhere }}\n"},
     rc=(1, 3), file="t.j2", line=None, keys=("not_defined_anywhere",))

case(name="template-syntax-error",
     files={"site.yml": _tpl_task, "templates/t.j2": "a\n{% if x %}\nb\n{% endfor %}\n"},
     rc=(1, 3), file="t.j2", line=(2, 4, 5))

case(name="template-syntax-error-unclosed",
     files={"site.yml": _tpl_task, "templates/t.j2": "a\nb = {{ x \nc\n"},
     rc=(1, 3), file="t.j2", line=(2, 3, 4))

_inline_syntax = _play('- name: inline syntax error\n  copy:\n    content: "{{ foo bar }}"\n    dest: "{{ root }}/f"\n')
case(name="inline-jinja-syntax-error", files={"site.yml": _inline_syntax}, rc=(1, 3), file="site.yml",
     line=(line_of(_inline_syntax, "- name: inline syntax"), line_of(_inline_syntax, "foo bar")))

_undef_arg = _play('- name: undefined in args\n  copy:\n    content: x\n    dest: "{{ root }}/{{ nope_undefined }}"\n', pre=False)
case(name="undefined-variable-in-args", files={"site.yml": _undef_arg}, rc=(1, 3), file="site.yml",
     line=(line_of(_undef_arg, "- name: undefined in args"), line_of(_undef_arg, "nope_undefined")),
     keys=("nope_undefined",))

_missing_tpl = _play('- name: missing template\n  template:\n    src: nowhere.j2\n    dest: "{{ root }}/f"\n')
case(name="template-file-missing", files={"site.yml": _missing_tpl}, rc=(1, 3), file="site.yml",
     line=(line_of(_missing_tpl, "- name: missing template"), line_of(_missing_tpl, "nowhere.j2")),
     keys=("nowhere.j2",))

case(name="template-include-escapes",
     files={"site.yml": _tpl_task_nopre, "templates/t.j2": "a\n{% include '../../secret.txt' %}\n",
            "secret.txt": "secret\n"},
     rc=(1,), file="t.j2", line=None, keys=("../../secret.txt", "outside"))

case(name="template-include-absolute",
     files={"site.yml": _tpl_task_nopre, "templates/t.j2": "a\n{% include '/etc/passwd' %}\n"},
     rc=(1,), file="t.j2", line=None, keys=("/etc/passwd",))

# --- src escaping the repository ----------------------------------------------------------------
_esc_rel = _play('- name: escape\n  copy:\n    src: ../../secret.txt\n    dest: "{{ root }}/stolen"\n')
case(name="src-escapes-relative", files={"site.yml": _esc_rel}, rc=(1, 3), file="site.yml",
     line=(line_of(_esc_rel, "- name: escape"), line_of(_esc_rel, "secret.txt")), keys=("src",))

_esc_rel1 = _play('- name: escape one level\n  copy:\n    src: ../secret.txt\n    dest: "{{ root }}/stolen"\n')
case(name="src-escapes-relative-one-level", files={"site.yml": _esc_rel1}, rc=(1, 3), file="site.yml",
     line=(line_of(_esc_rel1, "- name: escape"), line_of(_esc_rel1, "secret.txt")), keys=("src",))

_esc_abs = _play('- name: absolute\n  copy:\n    src: "{{ outside }}/secret.txt"\n    dest: "{{ root }}/stolen"\n', pre=False)
case(name="src-absolute-outside", files={"site.yml": _esc_abs}, rc=(1, 3), file="site.yml",
     line=(line_of(_esc_abs, "- name: absolute"), line_of(_esc_abs, "secret.txt")), keys=("src",))

_esc_passwd = _play('- name: passwd\n  copy:\n    src: /etc/passwd\n    dest: "{{ root }}/stolen"\n')
case(name="src-etc-passwd", files={"site.yml": _esc_passwd}, rc=(1, 3), file="site.yml",
     line=(line_of(_esc_passwd, "- name: passwd"), line_of(_esc_passwd, "/etc/passwd")), keys=("src",))

_esc_tpl = _play('- name: template escape\n  template:\n    src: ../../secret.txt\n    dest: "{{ root }}/stolen"\n')
case(name="template-src-escapes", files={"site.yml": _esc_tpl}, rc=(1, 3), file="site.yml",
     line=(line_of(_esc_tpl, "- name: template escape"), line_of(_esc_tpl, "secret.txt")), keys=("src",))

_esc_link = _play('- name: via symlink\n  copy:\n    src: link.txt\n    dest: "{{ root }}/stolen"\n')
case(name="src-symlink-in-files-points-outside", files={"site.yml": _esc_link}, rc=(1, 3), file="site.yml",
     line=(line_of(_esc_link, "- name: via symlink"), line_of(_esc_link, "link.txt")), keys=("link.txt",),
     symlinks={"files/link.txt": "{outside}/secret.txt"})

case(name="src-symlinked-files-dir-points-outside", files={"site.yml": _play(
    '- name: via symlinked dir\n  copy:\n    src: sub/secret.txt\n    dest: "{{ root }}/stolen"\n', pre=False)},
     rc=(1, 3), file="site.yml", line=None, keys=("secret.txt",),
     symlinks={"files/sub": "{outside}"})

_esc_role = "- name: role escape\n  copy:\n    src: ../../../../secret.txt\n    dest: \"{{ root }}/stolen\"\n"
case(name="src-escapes-from-role", files={"site.yml": _play("", head="  roles:\n    - r\n"),
                                          "roles/r/tasks/main.yml": _esc_role},
     rc=(1, 3), file="roles/r/tasks/main.yml", line=(1, 3), keys=("src",))

# --- symlink planted where a regular file is managed ----------------------------------------------
for mod, body in {
    "copy": 'copy:\n    content: "managed\\n"\n    dest: "{{ root }}/managed.conf"\n',
    "template": 'template:\n    src: t.j2\n    dest: "{{ root }}/managed.conf"\n',
    "lineinfile": 'lineinfile:\n    path: "{{ root }}/managed.conf"\n    line: "added"\n',
    "blockinfile": 'blockinfile:\n    path: "{{ root }}/managed.conf"\n    block: "added"\n',
    "file-mode": 'file:\n    path: "{{ root }}/managed.conf"\n    mode: "0600"\n    owner: nobody\n',
}.items():
    # no PRE task here: whether the root changes depends on whether the agent replaces the link
    pb = ("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
          + textwrap.indent(f"- name: managed file is a planted symlink\n  {body}", "    "))
    case(name=f"planted-symlink-dest-{mod}", files={"site.yml": pb, "templates/t.j2": "managed\n"},
         rc=(1, 3), file="site.yml", line=None, keys=("managed.conf",),
         root_links={"managed.conf": "{outside}/victim.txt"},
         may_replace_link=None if mod in ("file-mode",) else "managed.conf",
         xfail=("policy question: Ansible's file module follows links (follow: yes is its default), so "
                "chmod/chown through a planted link changes the outside file") if mod == "file-mode" else None)

_planted_dir = ("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                + textwrap.indent('- name: parent dir is a planted symlink\n  copy:\n    content: "x\\n"\n'
                                  '    dest: "{{ root }}/linkdir/victim.txt"\n', "    "))
case(name="planted-symlink-parent-dir", files={"site.yml": _planted_dir}, rc=(1, 3), file="site.yml",
     line=None, keys=("linkdir",), root_links={"linkdir": "{outside}"},
     xfail="policy question: a symlinked parent directory is followed by Ansible and by Unix tools alike")

# --- inventories that do not parse (ansible-core refuses them too) --------------------------------
for _inv_name, _inv_text, _inv_line, _inv_key in [
    ("inventory.ini", "[web]\nweb01\n[web:bogus]\nx=1\n", 3, "unknown type"),
    ("inventory.ini", "[web]\nweb01 port\n", 2, "key=value"),
    ("inventory.ini", "[prod:children]\nweb\n", 2, "undefined group"),
    ("inventory.ini", "[web]\nweb[9:1]\n", 2, "begin <= end"),
    ("hosts.yml", "all:\n  hosts:\n    web01:\n  childs:\n    web: {}\n", 4, "childs"),
    ("hosts.yml", "all:\n  hosts: [web01\n", 3, "YAML"),
]:
    case(name=f"inventory-does-not-parse-{_inv_name}-{_inv_line}-{_inv_key.split()[0]}",
         files={"site.yml": _play(""), _inv_name: _inv_text}, rc=(3,), file=_inv_name, line=_inv_line,
         keys=(_inv_key,), inventory=_inv_name)

case(name="inventory-without-this-host", files={"site.yml": _play(""), "inventory.ini": "[web]\nweb01\n"},
     rc=(3,), file="inventory.ini", line=None, keys=("not in the inventory",), inventory="inventory.ini")

for _cfg_text, _cfg_line, _cfg_key in [
    ("[defaults]\nforks = 5\nvault_password_file = ~/.vault_pass\n", 3, "vault_password_file"),
    ("[defaults]\nerror_on_undefined_vars = False\n", 2, "error_on_undefined_vars"),
    ("[defaults]\nhash_behavior = merge\n", 2, "hash_behavior"),
    ("[defaults]\nforks = 5\nforks = 6\n", 3, "forks"),
]:
    case(name=f"ansible-cfg-refused-{_cfg_key}-{_cfg_line}", files={"site.yml": _play(""), "ansible.cfg": _cfg_text},
         rc=(3,), file="ansible.cfg", line=_cfg_line, keys=(_cfg_key,))

_tpl_hosts = "- hosts: \"{{ target }}\"\n  gather_facts: false\n  tasks:\n" + textwrap.indent(PRE, "    ")
case(name="templated-hosts-pattern", files={"site.yml": _tpl_hosts}, rc=(3,), file="site.yml", line=1,
     keys=("hosts",))


# --- loops and lookups -----------------------------------------------------------------------------
_unknown_with = _play('- name: a loop over a lookup that does not exist\n  debug:\n    msg: "{{ item }}"\n  with_nosuchlookup: [1, 2]\n')
case(name="unknown-with-loop", files={"site.yml": _unknown_with}, rc=(3,), file="site.yml",
     line=line_of(_unknown_with, "with_nosuchlookup"), keys=("with_nosuchlookup",))

_lookup_abs = _play('- name: file lookup outside the repository\n  copy:\n    content: "{{ lookup(\'file\', outside ~ \'/secret.txt\') }}"\n    dest: "{{ root }}/stolen"\n', pre=False)
case(name="lookup-file-absolute-outside", files={"site.yml": _lookup_abs}, rc=(1,), file="site.yml",
     line=line_of(_lookup_abs, "- name: file lookup outside"), keys=("secret.txt", "outside the repository"))

_lookup_rel = _play('- name: file lookup climbing out\n  copy:\n    content: "{{ lookup(\'file\', \'../../secret.txt\') }}"\n    dest: "{{ root }}/stolen"\n', pre=False)
case(name="lookup-file-escapes-relative", files={"site.yml": _lookup_rel}, rc=(1,), file="site.yml",
     line=line_of(_lookup_rel, "- name: file lookup climbing out"), keys=("secret.txt", "escapes the repository"))

_with_file_esc = _play('- name: with_file climbing out\n  copy:\n    content: "{{ item }}"\n    dest: "{{ root }}/stolen"\n  with_file:\n    - ../secret.txt\n', pre=False)
case(name="with-file-escapes", files={"site.yml": _with_file_esc}, rc=(1,), file="site.yml",
     line=line_of(_with_file_esc, "- name: with_file climbing out"), keys=("secret.txt",))

_tpl_lookup_abs = _play('- name: template lookup of /etc/passwd\n  copy:\n    content: "{{ lookup(\'template\', \'/etc/passwd\') }}"\n    dest: "{{ root }}/stolen"\n', pre=False)
case(name="lookup-template-etc-passwd", files={"site.yml": _tpl_lookup_abs}, rc=(1,), file="site.yml",
     line=line_of(_tpl_lookup_abs, "- name: template lookup of"), keys=("/etc/passwd", "outside the repository"))

_unknown_lookup = _play('- name: unknown lookup\n  copy:\n    content: "{{ lookup(\'nosuchplugin\', \'x\') }}"\n    dest: "{{ root }}/f"\n', pre=False)
case(name="unknown-lookup", files={"site.yml": _unknown_lookup}, rc=(1,), file="site.yml",
     line=line_of(_unknown_lookup, "- name: unknown lookup"), keys=("nosuchplugin",))

# --- file editors (issue 12): run-time refusals, nothing applied --------------------------------------
# A replace pattern Rust's regex cannot match exactly as Python's re (a look-ahead): refused when
# the task runs, the file untouched.
_replace_lookahead = _play('- name: replace with a look-ahead\n  replace:\n    path: "{{ root }}/existing.conf"\n'
                           '    regexp: \'orig(?=inal)\'\n    replace: new\n', pre=False)
case(name="replace-regexp-look-ahead", files={"site.yml": _replace_lookahead}, rc=(1,), file="site.yml",
     line=line_of(_replace_lookahead, "- name: replace with a look-ahead"), keys=("look-ahead", "orig(?=inal)"))

# A cron job with a line break (Ansible only warns and writes a crontab that reads back
# differently): refused, the cron file not written.
_cron_newline = _play('- name: cron job with a newline\n  cron:\n    name: two lines\n'
                      '    cron_file: "{{ root }}/existing.conf"\n    user: root\n'
                      '    job: "/bin/true\\n* * * * * root /bin/evil"\n', pre=False)
case(name="cron-job-with-newline", files={"site.yml": _cron_newline}, rc=(1,), file="site.yml",
     line=line_of(_cron_newline, "- name: cron job with a newline"), keys=("line break",))

# --- control flow (h/flow): run-time refusals, nothing applied --------------------------------------
_deleg = _play('- name: delegated elsewhere\n  copy:\n    content: x\n    dest: "{{ root }}/existing.conf"\n'
               '  delegate_to: otherhost.example\n', pre=False)
case(name="delegate-to-another-host", files={"site.yml": _deleg}, rc=(1,), file="site.yml",
     line=line_of(_deleg, "- name: delegated elsewhere"), keys=("delegate_to", "otherhost.example"))

_iv_out = _play('- name: vars from outside\n  include_vars: /etc/hostname\n'
                '- name: not reached\n  copy:\n    content: x\n    dest: "{{ root }}/existing.conf"\n', pre=False)
case(name="include-vars-outside-repository", files={"site.yml": _iv_out}, rc=(1,), file="site.yml",
     line=line_of(_iv_out, "- name: vars from outside"), keys=("/etc/hostname", "outside the repository"))

# --- facts and queries (h12-facts): refused clearly, nothing applied -------------------------------
_stat_algo = _play('- name: stat with an unknown digest\n  stat:\n    path: /etc/hostname\n'
                   '    checksum_algorithm: sha999\n')
case(name="stat-unknown-checksum-algorithm", files={"site.yml": _stat_algo}, rc=(3,), file="site.yml",
     line=line_of(_stat_algo, "checksum_algorithm: sha999"), keys=("checksum_algorithm", "sha999"))

_find_lookahead = _play('- name: find with a look-ahead\n  find:\n    paths: "{{ root }}"\n'
                        '    patterns: "^(?!existing).*"\n    use_regex: true\n'
                        '- name: not reached\n  copy:\n    content: x\n    dest: "{{ root }}/existing.conf"\n',
                        pre=False)
case(name="find-unsupported-regex", files={"site.yml": _find_lookahead}, rc=(1,), file="site.yml",
     line=line_of(_find_lookahead, "- name: find with a look-ahead"), keys=("patterns", "look-around"))


# --- git / pip (h12-gitpip): arguments the agent does not implement fail when reached ------------
_git_archive = _play('- name: git with an archive\n  git:\n    repo: "{{ root }}/nowhere.git"\n'
                     '    dest: "{{ root }}/checkout"\n    archive: "{{ root }}/out.zip"\n', pre=False)
case(name="git-archive-refused", files={"site.yml": _git_archive}, rc=(1,), file="site.yml",
     line=line_of(_git_archive, "- name: git with an archive"), keys=("archive", "not supported"))

_pip_marker = _play('- name: pip with an environment marker\n  pip:\n'
                    '    name: "foo; python_version < \'3\'"\n    executable: /nonexistent/pip\n', pre=False)
case(name="pip-marker-refused", files={"site.yml": _pip_marker}, rc=(1,), file="site.yml",
     line=line_of(_pip_marker, "- name: pip with an environment marker"),
     keys=("python_version", "environment markers are not supported"))


# ------------------------------------------------------------------------------------------------
def _populate_root(root: Path):
    (root / "existing.conf").write_text("original\n")
    os.chmod(root / "existing.conf", 0o640)
    (root / "sub").mkdir()
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)))
    os.chown(root / "sub" / "data.bin", 1, 1)
    os.symlink("../existing.conf", root / "sub" / "link")


def _snapshot_outside(outside: Path) -> dict:
    return snapshot_exact(outside)

# --- the bridge to ansible-core (`ansible_modules: auto`) ----------------------------------------
# A module ansible-core does not have either, a collection not installed, a module that needs its
# controller-side action plugin, no interpreter: the task fails when reached, with the fix in the
# message; the task after it does not run.
_AFTER = "- name: after\n  copy: {content: x, dest: \"{{ root }}/after\"}\n"
_bridge_missing = _play('- name: no such ansible module\n  ansible.builtin.frobnicate:\n    path: "{{ root }}/x"\n'
                        + _AFTER, pre=False)
case(name="bridge-module-not-found", files={"site.yml": _bridge_missing}, rc=(1,), file="site.yml",
     line=line_of(_bridge_missing, "- name: no such ansible module"),
     keys=("ansible.builtin.frobnicate", "not found", "via ansible"), bridge="")
_bridge_coll = _play('- name: collection not installed\n  community.general.frobnicate: {}\n' + _AFTER, pre=False)
case(name="bridge-collection-not-installed", files={"site.yml": _bridge_coll}, rc=(1,), file="site.yml",
     line=line_of(_bridge_coll, "- name: collection not installed"),
     keys=("community.general.frobnicate", "ansible-galaxy collection install community.general"), bridge="")
_bridge_plugin = _play('- name: needs the controller\n  ansible.builtin.fetch:\n    src: /etc/hostname\n'
                       '    dest: "{{ root }}/fetched"\n' + _AFTER, pre=False)
case(name="bridge-controller-action-plugin", files={"site.yml": _bridge_plugin}, rc=(1,), file="site.yml",
     line=line_of(_bridge_plugin, "- name: needs the controller"),
     keys=("`ansible.builtin.fetch`", "action plugin"), bridge="")
_bridge_nopy = _play('- name: no interpreter\n  ansible.builtin.slurp:\n    src: /etc/hostname\n' + _AFTER, pre=False)
case(name="bridge-no-interpreter", files={"site.yml": _bridge_nopy}, rc=(1,), file="site.yml",
     line=line_of(_bridge_nopy, "- name: no interpreter"),
     keys=("/nonexistent/python3", "install ansible-core", "ansible_python"), bridge="/nonexistent/python3")


@pytest.mark.parametrize("c", [pytest.param(c, marks=pytest.mark.xfail(reason=c.xfail, strict=False))
                               if c.xfail else c for c in CASES], ids=[c.name for c in CASES])
def test_bad_input(c: Case, tmp_path, agent):
    repo = tmp_path / "repo" / "branch"      # two levels so ../../secret.txt lands in tmp_path
    outside = tmp_path / "outside"
    root = tmp_path / "root"
    for d in (repo, outside, root):
        d.mkdir(parents=True)
    (outside / "secret.txt").write_text("secret outside the repository\n")
    (outside / "victim.txt").write_text("victim outside the root\n")
    os.chmod(outside / "victim.txt", 0o644)
    (tmp_path / "secret.txt").write_text("secret next to the repository\n")
    (tmp_path / "repo" / "secret.txt").write_text("secret in the repo's parent\n")
    for rel, text in c.files.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    (repo / "files").mkdir(exist_ok=True)
    for rel, target in c.symlinks.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target.format(outside=outside), p)
    _populate_root(root)
    for rel, target in c.root_links.items():
        os.symlink(target.format(outside=outside), root / rel)

    before_root = snapshot_exact(root)
    before_out = _snapshot_outside(outside)
    before_tmp_secret = (tmp_path / "secret.txt").read_text()

    # human output: invalid input (rc 3) must be explained on stderr; a failed task (rc 1) may be
    # reported in the per-task output on stdout
    markers = harness.Markers(inventory=c.inventory) if c.inventory else None
    if c.bridge is not None:
        markers = markers or harness.Markers()
        markers.ansible_modules = True
        markers.ansible_python = c.bridge or None
    r = harness.run_agent(repo, root, extra=[f"outside={outside}"], fmt_json=False, markers=markers)
    info = r.describe()

    problems = []
    # the outside world is never touched
    d_out = tree_diff(before_out, _snapshot_outside(outside), "before", "after")
    if d_out:
        problems.append("files OUTSIDE the root changed:\n" + "\n".join(d_out))
    if (tmp_path / "secret.txt").read_text() != before_tmp_secret:
        problems.append("secret next to the repo changed")

    after_root = snapshot_exact(root)
    replaced = False
    if c.may_replace_link and r.rc in (0, 2):
        # acceptable alternative: the link was replaced by a regular file (what Ansible's copy does)
        e = after_root.get(c.may_replace_link)
        if not e or e["type"] != "file":
            problems.append(f"agent succeeded but {c.may_replace_link} is not a regular file: {e}")
        replaced = True
        rest_before = {k: v for k, v in before_root.items() if k not in (c.may_replace_link, ".")}
        rest_after = {k: v for k, v in after_root.items() if k not in (c.may_replace_link, ".")}
        d = tree_diff(rest_before, rest_after, "before", "after")
        if d:
            problems.append("root changed beyond the replaced link:\n" + "\n".join(d))
    else:
        if r.rc not in c.rc:
            problems.append(f"exit code {r.rc}, expected one of {c.rc}")
        d = tree_diff(before_root, after_root, "before", "after")
        if d:
            problems.append("scratch root changed:\n" + "\n".join(d))
        err = r.stderr if r.rc == 3 else r.stderr + "\n" + r.stdout
        if c.file and c.file not in err and os.path.basename(c.file) not in err:
            problems.append(f"stderr does not name the file {c.file!r}")
        if c.line is not None:
            lines = c.line if isinstance(c.line, tuple) else (c.line,)
            pat = re.compile(r"(:(%s)\b|line:? (%s)\b)" % ("|".join(map(str, lines)), "|".join(map(str, lines))))
            if not pat.search(err):
                problems.append(f"stderr does not name line {lines} (as ':N' or 'line N')")
        for k in c.keys:
            if k not in err:
                problems.append(f"stderr does not mention {k!r}")
        if "stolen" in os.listdir(root):
            problems.append("the escaped src was copied into the root")
    if problems:
        pytest.fail(f"{c.name}:\n  - " + "\n  - ".join(problems) + "\n" + info, pytrace=False)
