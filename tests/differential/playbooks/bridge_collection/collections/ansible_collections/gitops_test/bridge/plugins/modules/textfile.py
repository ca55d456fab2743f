#!/usr/bin/python
# A test collection's module (beside the playbook, as ansible-pull repositories carry them):
# writes `text` to `path`; check mode and diff supported; returns facts.
from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gitops_test.bridge.plugins.module_utils.text import line_of

DOCUMENTATION = r"""
module: textfile
short_description: write a line to a file (test module)
options:
  path: {type: path, required: true}
  text: {type: str, required: true}
"""


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path", required=True), text=dict(type="str", required=True)),
        supports_check_mode=True,
    )
    path, want = module.params["path"], line_of(module.params["text"])
    before = ""
    if os.path.exists(path):
        with open(path) as f:
            before = f.read()
    changed = before != want
    if changed and not module.check_mode:
        with open(path, "w") as f:
            f.write(want)
    result = dict(changed=changed, path=path, ansible_facts=dict(textfile_last=path))
    if module._diff:
        result["diff"] = dict(before=before, after=want, before_header=path, after_header=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
