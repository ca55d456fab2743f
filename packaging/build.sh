#!/usr/bin/env bash
# Build the .deb and the .rpm of gitops-agent into target/packages/, from one staged tree.
#
#   packaging/build.sh                          # release build (cargo build --profile dist --locked)
#   packaging/build.sh --binary target/debug/gitops-agent    # package a binary already built
#
# Options / environment:
#   --binary PATH   (GITOPS_PKG_BINARY)   package this binary instead of building the release one
#                                         (the tests package the debug build: no release build in CI)
#   --version V     (GITOPS_PKG_VERSION)  package version (default: the workspace version of
#                                         Cargo.toml); e.g. 0.1.0+test2 for an upgrade test
#                                         (the package's version only: `gitops-agent --version`
#                                         prints the crate's)
#   --out DIR       (GITOPS_PKG_OUT)      output directory (default: target/packages)
#   --only deb|rpm                        build one of the two
#   --fast                                gzip -1 instead of xz -9 (the tests: a debug binary is big)
#   SOURCE_DATE_EPOCH                     timestamps inside both packages (default: the last
#                                         commit's time, so a rebuild gives the same bytes)
#
# The one source of truth is this script: the file list below (stage()) feeds both formats;
# the maintainer scripts are packaging/deb/{postinst,prerm,postrm} and packaging/rpm/scriptlets.
# Needs: dpkg-deb (dpkg), rpmbuild (rpm), strip (binutils), gzip. Why not cargo-deb /
# cargo-generate-rpm: see packaging/README.md.
set -euo pipefail
shopt -s inherit_errexit   # build_deb/build_rpm run inside $(...)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cd "$repo"

binary="${GITOPS_PKG_BINARY:-}"
version="${GITOPS_PKG_VERSION:-}"
out="${GITOPS_PKG_OUT:-$repo/target/packages}"
only=""
fast=0
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --fast) fast=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

name=gitops-agent
if [ -z "$version" ]; then
  version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
fi
[ -n "$version" ] || { echo "build.sh: no version" >&2; exit 1; }
case "$version" in
  *[!A-Za-z0-9.+~]*) echo "build.sh: version $version: only [A-Za-z0-9.+~]" >&2; exit 1 ;;
esac
arch_deb="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
arch_rpm="$(uname -m)"
summary="$(sed -n 's/^description *= *"\(.*\)"/\1/p' agent/Cargo.toml)"
homepage="$(sed -n 's/^repository *= *"\(.*\)"/\1/p' Cargo.toml)"
maintainer="gitops-agent developers <gitops-agent@example.invalid>"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
fi
export SOURCE_DATE_EPOCH
# The copyright years: from the first commit's to the build's (both from Git: reproducible).
year_now="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)"
year_first="$(git log --reverse --format=%cd --date=format:%Y 2>/dev/null | sed -n 1p)"
years="${year_first:-$year_now}"; [ "$years" = "$year_now" ] || years="$years-$year_now"

for tool in dpkg-deb rpmbuild strip readelf objdump gzip; do
  if [ "$only" = deb ] && [ $tool = rpmbuild ]; then continue; fi
  if [ "$only" = rpm ] && [ $tool = dpkg-deb ]; then continue; fi
  command -v $tool >/dev/null || { echo "build.sh: $tool not found (apt-get install dpkg rpm binutils gzip)" >&2; exit 1; }
done

t0=$(date +%s)
if [ -z "$binary" ]; then
  # the `dist` profile (Cargo.toml): release optimised for size (opt-level s, fat LTO, 1 CGU)
  cargo build --profile dist --locked -p gitops-agent
  binary="${CARGO_TARGET_DIR:-$repo/target}/dist/gitops-agent"
fi
[ -x "$binary" ] || { echo "build.sh: $binary is not an executable" >&2; exit 1; }
# The daemon `gitops-agent run` execs: built with it, taken from beside it.
daemon="$(dirname "$binary")/gitops-agentd"
[ -x "$daemon" ] || { echo "build.sh: $daemon (built with $binary) is not an executable" >&2; exit 1; }
# The generator of the man pages and completions (packaging/gen: agent/src/cli.rs compiled into a
# separate small binary, so the agent does not carry clap_mangen/clap_complete). A dev build: it
# reuses the workspace's debug build of clap (cargo build --workspace already built it).
gen="${CARGO_TARGET_DIR:-$repo/target}/debug/gitops-agent-gen"
cargo build --locked -q -p gitops-agent-gen
echo "=== timing: package binaries $(( $(date +%s) - t0 ))s"

work="$out/.work"
rm -rf "$work"
mkdir -p "$work" "$out"
trap 'rm -rf "$work"' EXIT

# --- the binary, stripped, and what is generated from the CLI (man pages, completions) ---------
strip --strip-all -o "$work/gitops-agent" "$binary"
strip --strip-all -o "$work/gitops-agentd" "$daemon"
chmod 0755 "$work/gitops-agent" "$work/gitops-agentd"
"$gen" man --out "$work/man" >/dev/null
for sh in bash zsh fish; do "$gen" completions "$sh" --out "$work/completions" >/dev/null; done
for m in "$work"/man/*.1; do
  touch -d "@$SOURCE_DATE_EPOCH" "$m"
  gzip -9n "$m"
done

# --- the staged tree: one list for both formats ------------------------------------------------
# stage ROOT UNITDIR ZSHDIR: everything but the per-format metadata (copyright vs %license).
stage() {
  local root=$1 unitdir=$2 zshdir=$3
  install -D -m 0755 "$work/gitops-agent" "$root/usr/bin/gitops-agent"
  install -D -m 0755 "$work/gitops-agentd" "$root/usr/libexec/gitops-agent/gitops-agentd"
  install -D -m 0644 systemd/gitops-agent.service "$root$unitdir/gitops-agent.service"
  install -D -m 0644 packaging/config.yml "$root/etc/gitops-agent/config.yml"
  install -d -m 0755 "$root/var/lib/gitops-agent"
  install -d -m 0755 "$root/usr/share/man/man1"
  install -m 0644 "$work"/man/*.1.gz "$root/usr/share/man/man1/"
  install -D -m 0644 "$work/completions/gitops-agent.bash" "$root/usr/share/bash-completion/completions/gitops-agent"
  install -D -m 0644 "$work/completions/_gitops-agent" "$root$zshdir/_gitops-agent"
  install -D -m 0644 "$work/completions/gitops-agent.fish" "$root/usr/share/fish/vendor_completions.d/gitops-agent.fish"
  local doc="$root/usr/share/doc/gitops-agent"
  install -D -m 0644 README.md "$doc/README.md"
  install -D -m 0644 systemd/README.md "$doc/systemd.md"
  install -D -m 0644 packaging/README.md "$doc/packaging.md"
  install -d -m 0755 "$doc/docs"
  install -m 0644 docs/*.md "$doc/docs/"
  install -D -m 0644 examples/cloud-init.yaml "$doc/examples/cloud-init.yaml"
  # reproducible: every file dated SOURCE_DATE_EPOCH
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# Runtime libraries the binaries link (readelf NEEDED) -> Debian packages. Anything else is an
# error: the package must declare what it needs.
deb_shlib_depends() {
  local needed glibc deps=()
  needed="$(for b in "$work/gitops-agent" "$work/gitops-agentd"; do readelf -d "$b"; done | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | sort -u)"
  glibc="$(for b in "$work/gitops-agent" "$work/gitops-agentd"; do objdump -T "$b"; done | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
  for lib in $needed; do
    case "$lib" in
      libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux-*.so.*) deps+=("libc6 (>= $glibc)") ;;
      libgcc_s.so.1) deps+=("libgcc-s1") ;;
      *) echo "build.sh: the binary links $lib: map it to a package in deb_shlib_depends" >&2; exit 1 ;;
    esac
  done
  printf '%s\n' "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}

installed_kb() { du -sk --apparent-size "$1" | cut -f1; }

# --- .deb ---------------------------------------------------------------------------------------
build_deb() {
  local root="$work/deb"
  stage "$root" /lib/systemd/system /usr/share/zsh/vendor-completions
  local doc="$root/usr/share/doc/gitops-agent"
  {
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: gitops-agent"
    echo "Source: $homepage"
    echo
    echo "Files: *"
    echo "Copyright: $years gitops-agent developers"
    echo "License: Apache-2.0"
    echo " On Debian systems, the full text of the Apache License 2.0 is in"
    echo " /usr/share/common-licenses/Apache-2.0."
  } > "$doc/copyright"
  # A native package's changelog (Debian Policy 12.7); the changes themselves are in Git.
  {
    echo "$name ($version) unstable; urgency=medium"
    echo
    echo "  * Built from the gitops-agent source tree; the changes are in its Git history."
    echo
    echo " -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
  } | gzip -9n > "$doc/changelog.gz"
  # lintian overrides, each with its reason (packaging/deb/lintian-overrides)
  install -D -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/$name"
  find "$doc" "$root/usr/share/lintian" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  install -d -m 0755 "$root/DEBIAN"
  local depends; depends="$(deb_shlib_depends)"
  cat > "$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch_deb
Maintainer: $maintainer
Installed-Size: $(installed_kb "$root")
Depends: $depends
Recommends: ca-certificates, openssh-client
Suggests: git
Section: admin
Priority: optional
Homepage: $homepage
Description: $summary
 gitops-agent pulls this host's branch (hosts/<hostname>) from a Git repository,
 verifies its signature, converges the host to the Ansible-syntax playbook it
 holds (files, packages, services, users, commands) without Python, and writes
 a status commit back. It runs as a systemd service (Type=notify, watchdog).
 .
 Transports: https:// is built in (rustls; ca-certificates for the system's CA
 store); ssh:// and git@host:path run ssh (openssh-client); file:// and local
 paths run git-upload-pack (git) and, for the status push,
 git-receive-pack.
EOF
  echo /etc/gitops-agent/config.yml > "$root/DEBIAN/conffiles"
  install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
  chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
  find "$root/DEBIAN" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  local deb="$out/${name}_${version}_${arch_deb}.deb"
  local z=(-Zxz -z9); [ $fast = 0 ] || z=(-Zgzip -z1)
  dpkg-deb --root-owner-group "${z[@]}" --build "$root" "$deb" >/dev/null
  echo "$deb"
}

# --- .rpm ---------------------------------------------------------------------------------------
build_rpm() {
  local root="$work/rpm"
  stage "$root" /usr/lib/systemd/system /usr/share/zsh/site-functions
  install -D -m 0644 LICENSE "$root/usr/share/licenses/gitops-agent/LICENSE"
  touch -d "@$SOURCE_DATE_EPOCH" "$root/usr/share/licenses/gitops-agent/LICENSE" "$root/usr/share/licenses/gitops-agent"
  # The same version string: [A-Za-z0-9.+~] is valid for rpm too (no '-').
  local top="$work/rpmbuild" spec="$work/rpmbuild/gitops-agent.spec"
  mkdir -p "$top"
  {
    cat <<EOF
Name: $name
Version: $version
Release: 1
Summary: $summary
License: Apache-2.0
Group: System Environment/Daemons
Packager: $maintainer
URL: $homepage
BuildArch: $arch_rpm
Recommends: ca-certificates, openssh-clients
Suggests: git-core
%global debug_package %{nil}
%global __os_install_post %{nil}
%global _build_id_links none

%description
gitops-agent pulls this host's branch (hosts/<hostname>) from a Git repository,
verifies its signature, converges the host to the Ansible-syntax playbook it
holds (files, packages, services, users, commands) without Python, and writes
a status commit back. It runs as a systemd service (Type=notify, watchdog).

Transports: https:// is built in (rustls; ca-certificates for the system's CA
store); ssh:// and git@host:path run ssh (openssh-clients); file:// and local
paths run git-upload-pack (git-core) and, for the status push,
git-receive-pack.

%install
cp -a "$root/." "%{buildroot}/"

%files
%attr(0755,root,root) /usr/bin/gitops-agent
%dir /usr/libexec/gitops-agent
%attr(0755,root,root) /usr/libexec/gitops-agent/gitops-agentd
/usr/lib/systemd/system/gitops-agent.service
%dir /etc/gitops-agent
%config(noreplace) /etc/gitops-agent/config.yml
%dir /var/lib/gitops-agent
/usr/share/man/man1/*.1.gz
/usr/share/bash-completion/completions/gitops-agent
/usr/share/zsh/site-functions/_gitops-agent
/usr/share/fish/vendor_completions.d/gitops-agent.fish
%doc /usr/share/doc/gitops-agent
%license /usr/share/licenses/gitops-agent/LICENSE

%changelog
* $(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" '+%a %b %d %Y') $maintainer - $version-1
- Built from the gitops-agent source tree; the changes are in its Git history.

EOF
    cat packaging/rpm/scriptlets
  } > "$spec"
  local payload=w9.xzdio; [ $fast = 0 ] || payload=w1.gzdio
  rpmbuild -bb --quiet \
    --define "_topdir $top" --define "_rpmdir $work/rpms" --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "use_source_date_epoch_as_buildtime 1" --define "clamp_mtime_to_source_date_epoch 1" \
    --define "_buildhost reproducible" --define "_binary_payload $payload" \
    "$spec" >/dev/null
  local rpm="$out/${name}-${version}-1.${arch_rpm}.rpm"
  mv "$work/rpms/${name}-${version}-1.${arch_rpm}.rpm" "$rpm"
  echo "$rpm"
}

built=()
[ "$only" = rpm ] || built+=("$(build_deb)")
[ "$only" = deb ] || built+=("$(build_rpm)")
echo "=== timing: packages $(( $(date +%s) - t0 ))s"
printf 'binary (stripped) %8d bytes, daemon %d bytes\n' "$(stat -c %s "$work/gitops-agent")" "$(stat -c %s "$work/gitops-agentd")"
for f in "${built[@]}"; do printf '%-60s %8d bytes\n' "$f" "$(stat -c %s "$f")"; done
