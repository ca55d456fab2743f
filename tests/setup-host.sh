#!/usr/bin/env bash
# Installs what the test tiers need on a Debian 12 machine, with apt (tests/run-all.sh calls it
# first; .ci/run through run-all.sh). Installs nothing when every tool is there; as a non-root
# user it only lists what is missing (the root-only tiers then fail or are skipped, saying why).
#
#   tests/setup-host.sh           # install what is missing (root)
#   tests/setup-host.sh --check   # list what is missing, install nothing; exit 1 if anything is
#
# Not installed here: the Rust toolchain (1.88 or newer; Debian's cargo is older), see README.md.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

check_only=0
case "${1:-}" in
  --check) check_only=1 ;;
  "") ;;
  *) echo "setup-host.sh: unknown argument $1 (only --check)" >&2; exit 2 ;;
esac

need=()
# Build: a C toolchain for the crates' build scripts and the linker; /usr/bin/time for the benchmarks.
command -v git >/dev/null || need+=(git)
command -v cc >/dev/null || need+=(build-essential)
[ -x /usr/bin/time ] || need+=(time)
# Git transports and trust tests (agent/tests/): ssh-keygen and sshd (SSH transport, SSH-signed
# commits), gpg (OpenPGP-signed commits), python3 (the CGI bridge in front of git http-backend).
command -v ssh-keygen >/dev/null || need+=(openssh-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v gpg >/dev/null || need+=(gnupg)
command -v python3 >/dev/null || need+=(python3)
# https tests (agent/tests/pull_https.rs): a private CA and a server certificate made at test time.
command -v openssl >/dev/null || need+=(openssl)
# python3 -m venv needs ensurepip, which Debian splits into python3-venv
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then need+=(python3-venv); fi
# Systemd container tier (tests/system): debootstrap a bookworm root and boot it with
# systemd-nspawn in a network namespace (ip, nsenter), cache it as .tar.zst; build test .debs
# (dpkg-deb, dpkg-scanpackages, apt-ftparchive) and .rpms (rpmbuild, createrepo_c) and install
# those into scratch roots with dnf --installroot.
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v nsenter >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v zstd >/dev/null || need+=(zstd)
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
command -v apt-ftparchive >/dev/null || need+=(apt-utils)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v createrepo_c >/dev/null || need+=(createrepo-c)
command -v dnf >/dev/null || need+=(dnf)
# Package checks (tests/system/test_package.py): Debian's and RPM's linters on the packages.
command -v lintian >/dev/null || need+=(lintian)
command -v rpmlint >/dev/null || need+=(rpmlint)
# VM tier (tests/system/test_vm.py, tests/lib/vm.py): qemu under TCG, socat for the guest's only
# way out (qemu guestfwd to the test's Git server on 127.0.0.1), mkfs.ext4 -d for the disk images.
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v socat >/dev/null || need+=(socat)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
# packaging/build.sh (test_package.py packages the debug build): strip, readelf, objdump
# (binutils; also part of build-essential), dpkg-deb and rpmbuild above.
command -v strip >/dev/null && command -v readelf >/dev/null && command -v objdump >/dev/null || need+=(binutils)

if [ ${#need[@]} -eq 0 ]; then
  echo "setup-host: every tool the tests use is installed"
  exit 0
fi
echo "setup-host: missing: ${need[*]}"
if [ $check_only = 1 ]; then exit 1; fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-host: not root, installing nothing; as root: tests/setup-host.sh" \
       "(or apt-get install ${need[*]})" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "setup-host: no apt-get: install the equivalents of: ${need[*]}" >&2
  exit 0
fi

t0=$(date +%s)
echo "setup-host: apt-get update and install (a fresh machine: about 2-3 minutes)"
apt-get update -q
# Never let a package start a daemon on this machine (openssh-server would start sshd on
# port 22): tests start their own servers on 127.0.0.1 only.
policy=/usr/sbin/policy-rc.d
had_policy=0; [ -e "$policy" ] && had_policy=1
if [ $had_policy = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# bookworm's qemu-system-x86 (7.2) conflicts with the newer backported qemu-utils that this
# machine kind carries: take bookworm's qemu-utils alongside it.
if printf '%s\n' "${need[@]}" | grep -qx qemu-system-x86; then
  qu=$(apt-cache show qemu-utils | awk '/^Version: 1:7\./{print $2; exit}')
  [ -n "$qu" ] && need+=("qemu-utils=$qu")
fi
apt-get install -y -q --no-install-recommends --allow-downgrades "${need[@]}" </dev/null
echo "=== timing: setup-host apt $(( $(date +%s) - t0 ))s"
