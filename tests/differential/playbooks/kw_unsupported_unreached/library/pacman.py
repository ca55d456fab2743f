#!/usr/bin/python
# A stand-in for community.general.pacman (not installed in the test venv): never run here.
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="list", elements="str"),
                                              state=dict(type="str", default="present")))
    module.fail_json(msg="pacman stand-in: not meant to run")


if __name__ == "__main__":
    main()
