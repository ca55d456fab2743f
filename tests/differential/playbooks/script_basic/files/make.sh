#!/bin/sh
# writes its arguments, its working directory and an environment variable
out="$1"; shift
{
  echo "args: $*"
  # the working directory only with chdir (without, Ansible runs in the playbook's directory)
  [ -n "$SHOW_PWD" ] && echo "pwd: $(pwd)"
  echo "greeting: ${GREETING:-unset}"
  echo "name: $(basename "$0" | sed 's/[0-9]*$//')"
} > "$out"
echo "done $out"
echo "to stderr" >&2
