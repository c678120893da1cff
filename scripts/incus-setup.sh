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
#   LAB_FAST_POOL      btrfs pool for the Molecule containers (default tplabs; see
#                      setup_fast_pool)
set -euo pipefail

LAB_IMAGE=${LAB_IMAGE:-tplabs/debian-bookworm}
LAB_IMAGE_SUITE=${LAB_IMAGE_SUITE:-bookworm}
STATE=${INCUS_SETUP_STATE:-/var/lib/tplabs-incus}
FAST_POOL=${LAB_FAST_POOL:-tplabs}

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
    | grep -v security | head -n1 || true)
  [ -n "$uri" ] || uri=http://deb.debian.org/debian
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri"
}
# Bump when the image build changes: an image with an older tplabs_build is rebuilt.
# 3: openssh-server (the lab over SSH), host keys made by each container at its first boot.
IMAGE_BUILD=3
# Packages debootstrap adds to minbase.
IMAGE_PACKAGES=python3,systemd-sysv,dbus,openssh-server
image_metadata() {
  # $1: architecture, $2: epoch seconds, $3: suite
  printf 'architecture: %s\ncreation_date: %s\nproperties:\n  os: debian\n  release: %s\n  description: tplabs offline Debian %s (debootstrap minbase)\n  tplabs_build: "%s"\n' \
    "$1" "$2" "$3" "$3" "$IMAGE_BUILD"
}
# Prints what build_image must do for an image whose tplabs_build property is $1 (empty:
# no such image): "present", "rebuild" (older build) or "build".
prepare_sshd() {
  # $1: the image rootfs. No host key in the image (every container would share it): sshd
  # makes its own ed25519 key on its first start. Root logs in with a key only; sshd listens
  # on the container's loopback, reached through an Incus proxy device (roles/lab).
  local root=$1
  rm -f "$root"/etc/ssh/ssh_host_*
  mkdir -p "$root/etc/systemd/system/ssh.service.d" "$root/etc/ssh/sshd_config.d"
  # An empty ExecStartPre= drops Debian's `sshd -t`, which fails with no host key; it runs
  # again once the key exists.
  printf '%s\n' '[Service]' 'ExecStartPre=' \
    "ExecStartPre=/bin/sh -c \"test -s /etc/ssh/ssh_host_ed25519_key || exec /usr/bin/ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key\"" \
    'ExecStartPre=/usr/sbin/sshd -t' \
    > "$root/etc/systemd/system/ssh.service.d/tplabs-host-key.conf"
  printf '%s\n' '# tplabs lab image: key logins on the loopback, one host key made at first boot.' \
    'ListenAddress 127.0.0.1' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PasswordAuthentication no' \
    'KbdInteractiveAuthentication no' 'PermitRootLogin prohibit-password' 'UseDNS no' \
    > "$root/etc/ssh/sshd_config.d/tplabs.conf"
}
image_action() {
  if [ -z "${1+x}" ] || [ "$1" = "<none>" ]; then echo build
  elif [ "$1" = "$IMAGE_BUILD" ]; then echo present
  else echo rebuild
  fi
}

check_prereqs() {
  [ "$(id -u)" = 0 ] || die "must run as root (Incus needs root here); run: sudo make test"
  command -v apt-get >/dev/null || die "apt-get not found: install incus-base and debootstrap by hand, then re-run"
}

install_packages() {
  if command -v incus >/dev/null && [ -x /usr/libexec/incus/incusd ] && command -v debootstrap >/dev/null \
    && command -v mkfs.btrfs >/dev/null; then
    say "packages present"
    return
  fi
  local codename src=/etc/apt/sources.list.d/tplabs-backports.sources first
  codename=$(os_codename)
  export DEBIAN_FRONTEND=noninteractive
  if needs_backports "$codename"; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      first=$(find /etc/apt/sources.list.d -maxdepth 1 -name '*.sources' 2>/dev/null | sort | head -n1 || true)
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
  apt-get install -y -qq --no-install-recommends debootstrap btrfs-progs >/dev/null
  say "installed incus-base, debootstrap and btrfs-progs"
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

can_use_btrfs() {
  # $1: /proc/filesystems, $2: the loop control device (parameters for the unit tests)
  grep -qw btrfs "${1:-/proc/filesystems}" 2>/dev/null && [ -e "${2:-/dev/loop-control}" ]
}

setup_fast_pool() {
  # On the dir pool every launch unpacks the whole image (10-20 s on a busy machine); on a
  # btrfs pool (a loop file) the image is unpacked once and each launch is a snapshot
  # (about a second). Optional: without btrfs, everything still works on the dir pool.
  if incus storage show "$FAST_POOL" >/dev/null 2>&1; then
    say "storage pool $FAST_POOL present"
    return
  fi
  modprobe btrfs 2>/dev/null || true
  if ! can_use_btrfs /proc/filesystems /dev/loop-control; then
    say "no btrfs or loop devices here: containers stay on the dir pool (slower launches)"
    return
  fi
  if ! command -v mkfs.btrfs >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends btrfs-progs >/dev/null 2>&1 \
      || { say "btrfs-progs not installable: containers stay on the dir pool"; return; }
  fi
  if incus storage create "$FAST_POOL" btrfs size=20GiB >/dev/null 2>"$STATE/pool.err"; then
    say "created storage pool $FAST_POOL (btrfs on a sparse loop file: launches are snapshots)"
  else
    say "could not create the btrfs pool ($(tr '\n' ' ' < "$STATE/pool.err")): containers stay on the dir pool"
  fi
}

build_image() {
  local current=""
  if incus image info "$LAB_IMAGE" >/dev/null 2>&1; then
    current=$(incus image get-property "$LAB_IMAGE" tplabs_build 2>/dev/null || echo 1)
  else
    current="<none>"
  fi
  case $(image_action "$current") in
    present) say "image $LAB_IMAGE present (build $IMAGE_BUILD)"; return ;;
    rebuild) say "image $LAB_IMAGE is build $current, rebuilding as build $IMAGE_BUILD" ;;
  esac
  local work="$STATE/image-build" arch fingerprint
  rm -rf "$work"; mkdir -p "$work"
  say "building $LAB_IMAGE with debootstrap ($LAB_IMAGE_SUITE, about a minute)"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" "$LAB_IMAGE_SUITE" \
    "$work/rootfs" >"$work/debootstrap.log" 2>&1 || die "debootstrap failed; see $work/debootstrap.log"
  # The instance hostname comes from Incus; remove the build host's.
  rm -f "$work/rootfs/etc/hostname"
  prepare_sshd "$work/rootfs"
  # Every launch unpacks the whole rootfs: drop what a test container never reads
  # (downloaded .debs, apt lists, translations, manuals) to make launches faster.
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/cache/apt/*.bin \
    "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/usr/share/man/* "$work"/rootfs/usr/share/info/*
  find "$work/rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
  arch=$(uname -m)
  image_metadata "$arch" "$(date +%s)" "$LAB_IMAGE_SUITE" > "$work/metadata.yaml"
  # Uncompressed rootfs: Incus unpacks it on every launch, and gunzip was most of that time.
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  tar -C "$work" -czf "$work/metadata.tar.gz" metadata.yaml
  if [ "$current" = "<none>" ]; then
    incus image import "$work/metadata.tar.gz" "$work/rootfs.tar" --alias "$LAB_IMAGE" >/dev/null
  else
    # Import first, then move the alias: launches running meanwhile still find an image.
    fingerprint=$(incus image import "$work/metadata.tar.gz" "$work/rootfs.tar" 2>&1 | sed -nE 's/.*fingerprint: *([0-9a-f]+).*/\1/p')
    [ -n "$fingerprint" ] || die "image import did not print a fingerprint"
    local old
    old=$(incus image info "$LAB_IMAGE" | sed -nE 's/^Fingerprint: *([0-9a-f]+).*/\1/p')
    incus image alias delete "$LAB_IMAGE"
    incus image alias create "$LAB_IMAGE" "$fingerprint"
    [ -z "$old" ] || [ "$old" = "$fingerprint" ] || incus image delete "$old"
  fi
  rm -rf "$work"
  say "imported image $LAB_IMAGE (build $IMAGE_BUILD)"
}

main() {
  local t0=$SECONDS
  check_prereqs
  install_packages
  start_daemon
  setup_storage
  setup_fast_pool
  build_image
  say "ready in $((SECONDS - t0)) s"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
