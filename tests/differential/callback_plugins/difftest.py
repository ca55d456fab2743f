# Differential-test callback: records task results in execution order as JSON.
#
# Enabled by the differential harness through
#   ANSIBLE_CALLBACK_PLUGINS=<this dir>  ANSIBLE_CALLBACKS_ENABLED=difftest
# and writes to the file named by DIFFTEST_OUT when the playbook ends.
# (ansible-core 2.19 has no `json` stdout callback of its own any more.)
from __future__ import annotations

DOCUMENTATION = """
    name: difftest
    type: aggregate
    short_description: write task results as JSON for the differential tests
    description: Writes one entry per task result (loop aggregates, not items) to $DIFFTEST_OUT.
    requirements:
      - enabled via ANSIBLE_CALLBACKS_ENABLED=difftest
"""

import json
import os

from ansible.plugins.callback import CallbackBase

try:
    from ansible.playbook.handler import Handler
except Exception:  # pragma: no cover
    Handler = ()
try:
    from ansible.playbook.task_include import TaskInclude
except Exception:  # pragma: no cover
    TaskInclude = ()


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "difftest"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.results = []
        self.stats = {}
        self.out = os.environ.get("DIFFTEST_OUT")

    # -- helpers ---------------------------------------------------------
    def _record(self, result, status):
        task = result._task
        data = result._result if hasattr(result, "_result") else {}
        action = getattr(task, "action", None)
        resolved = getattr(task, "resolved_action", None) or action
        role = None
        if getattr(task, "_role", None) is not None:
            try:
                role = task._role.get_name(include_role_fqcn=False)
            except Exception:
                role = str(task._role)
        items = None
        if isinstance(data, dict) and isinstance(data.get("results"), list) and (task.loop or getattr(task, "loop_with", None)):
            items = []
            for r in data["results"]:
                if not isinstance(r, dict):
                    continue
                if r.get("skipped"):
                    st = "skipped"
                elif r.get("failed"):
                    st = "failed"
                elif r.get("changed"):
                    st = "changed"
                else:
                    st = "ok"
                items.append({"status": st, "changed": bool(r.get("changed", False))})
        self.results.append({
            "name": task.name or action,          # the task's own name (action as written when unnamed)
            "display": task.get_name(),            # Ansible's displayed name ("role : name")
            "role": role,
            "action": action,
            "resolved_action": resolved,
            "handler": isinstance(task, Handler) if Handler else False,
            "include": isinstance(task, TaskInclude) if TaskInclude else False,
            "meta": resolved in ("meta", "ansible.builtin.meta", "ansible.legacy.meta"),
            "status": status,
            "changed": bool(data.get("changed", False)) if isinstance(data, dict) else False,
            "items": items,
            "msg": (data.get("msg") if isinstance(data, dict) and status in ("failed", "ignored") else None),
        })

    # -- events ----------------------------------------------------------
    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result, "changed" if result._result.get("changed", False) else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False, **kwargs):
        self._record(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result, **kwargs):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result, **kwargs):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        for host in sorted(stats.processed.keys()):
            s = stats.summarize(host)
            self.stats[host] = s
        if self.out:
            with open(self.out, "w") as f:
                json.dump({"tasks": self.results, "stats": self.stats}, f, indent=1, default=str)
