#!/usr/bin/env bash
# Idempotent set-up of a local Incus for the lab and the Molecule scenarios.
#
# Installs incus-base (+ debootstrap), starts incusd when it is not answering (no systemd
# needed), gives the default profile a root disk on a `dir` pool, and builds/imports the
# offline image LAB_IMAGE (default tplabs/debian-bookworm) only when that alias is missing.
# Every step checks first and does nothing when the state is already right.
#
# Environment:
#   LAB_IMAGE          alias of the local image to build (default tplabs/debian-bookworm)
#   LAB_IMAGE_SUITE    Debian suite for debootstrap (default bookworm)
#   INCUS_SETUP_STATE  directory for logs and the image build (default /var/lib/tplabs-incus)
set -euo pipefail

LAB_IMAGE=${LAB_IMAGE:-tplabs/debian-bookworm}
LAB_IMAGE_SUITE=${LAB_IMAGE_SUITE:-bookworm}
STATE=${INCUS_SETUP_STATE:-/var/lib/tplabs-incus}

say() { printf 'incus-setup: %s\n' "$*"; }
die() { printf 'incus-setup: ERROR: %s\n' "$*" >&2; exit 1; }

# Pure helpers (unit tested without root: tests/unit/test_incus_setup.py sources them).
os_codename() { . /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}"; }
needs_backports() { [ "$1" = "bookworm" ]; }
backports_source_line() {
  # $1: an existing deb822 or one-line sources file; print a backports deb822 stanza for it.
  local uri
  uri=$(sed -nE -e 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' \
    -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' "$1" 2>/dev/null \
    | grep -v security | head -n1)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri"
}
image_metadata() {
  # $1: architecture, $2: epoch seconds, $3: suite
  printf 'architecture: %s\ncreation_date: %s\nproperties:\n  os: debian\n  release: %s\n  description: tplabs offline Debian %s (debootstrap minbase)\n' \
    "$1" "$2" "$3" "$3"
}

check_prereqs() {
  [ "$(id -u)" = 0 ] || die "must run as root (Incus needs root here); run: sudo make test"
  command -v apt-get >/dev/null || die "apt-get not found: install incus-base and debootstrap by hand, then re-run"
}

install_packages() {
  if command -v incus >/dev/null && [ -x /usr/libexec/incus/incusd ] && command -v debootstrap >/dev/null; then
    say "packages present"
    return
  fi
  local codename src=/etc/apt/sources.list.d/tplabs-backports.sources first
  codename=$(os_codename)
  export DEBIAN_FRONTEND=noninteractive
  if needs_backports "$codename"; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      first=$(ls /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
      [ -n "$first" ] || first=/etc/apt/sources.list
      backports_source_line "$first" > "$src"
      say "added bookworm-backports ($src)"
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends -t bookworm-backports incus-base >/dev/null
  else
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends incus-base >/dev/null
  fi
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  say "installed incus-base and debootstrap"
}

start_daemon() {
  mkdir -p "$STATE"
  if timeout 10 incus info >/dev/null 2>&1; then
    say "incusd already answering"
    return
  fi
  if pidof systemd >/dev/null 2>&1 && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    systemctl start incus.socket incus.service 2>/dev/null || true
  fi
  if ! timeout 5 incus info >/dev/null 2>&1; then
    say "starting incusd (log: $STATE/incusd.log)"
    nohup /usr/libexec/incus/incusd --group root --logfile "$STATE/incusd.log" >>"$STATE/incusd.out" 2>&1 &
  fi
  incus admin waitready --timeout 60 || die "incusd did not become ready; see $STATE/incusd.log"
  say "incusd ready"
}

setup_storage() {
  if ! incus storage show default >/dev/null 2>&1; then
    incus storage create default dir >/dev/null
    say "created storage pool default (dir)"
  fi
  if ! incus profile device show default 2>/dev/null | grep -q '^root:'; then
    incus profile device add default root disk path=/ pool=default >/dev/null
    say "added root disk to the default profile"
  fi
}

build_image() {
  if incus image info "$LAB_IMAGE" >/dev/null 2>&1; then
    say "image $LAB_IMAGE present"
    return
  fi
  local work="$STATE/image-build" arch
  rm -rf "$work"; mkdir -p "$work"
  say "building $LAB_IMAGE with debootstrap ($LAB_IMAGE_SUITE, about a minute)"
  debootstrap --variant=minbase --include=python3,systemd-sysv,dbus "$LAB_IMAGE_SUITE" \
    "$work/rootfs" >"$work/debootstrap.log" 2>&1 || die "debootstrap failed; see $work/debootstrap.log"
  # The instance hostname comes from Incus; remove the build host's.
  rm -f "$work/rootfs/etc/hostname"
  arch=$(uname -m)
  image_metadata "$arch" "$(date +%s)" "$LAB_IMAGE_SUITE" > "$work/metadata.yaml"
  tar -C "$work/rootfs" -czf "$work/rootfs.tar.gz" .
  tar -C "$work" -czf "$work/metadata.tar.gz" metadata.yaml
  incus image import "$work/metadata.tar.gz" "$work/rootfs.tar.gz" --alias "$LAB_IMAGE" >/dev/null
  rm -rf "$work"
  say "imported image $LAB_IMAGE"
}

main() {
  local t0=$SECONDS
  check_prereqs
  install_packages
  start_daemon
  setup_storage
  build_image
  say "ready in $((SECONDS - t0)) s"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
