#!/usr/bin/env bash
# Installs, from Debian packages, the tools that build the images without Docker and run the
# real-node tier: buildah and mmdebstrap (images), containerd, runc and the CNI plugins (the
# node's runtime), busybox-static (a test image), gcc + libc6-dev (the static pause binary).
#
#   bash hack/install-tools.sh            # install what is missing (needs root and apt-get)
#   bash hack/install-tools.sh --check    # exit 1 and name what is missing, install nothing
#
# A tool already on PATH is left alone, so a warm run takes no time. containerd is never
# started as a service: the test harness runs its own with a private configuration.
set -euo pipefail

# command -> Debian package
declare -A TOOLS=(
  [buildah]=buildah
  [mmdebstrap]=mmdebstrap
  [containerd]=containerd
  [containerd-shim-runc-v2]=containerd
  [ctr]=containerd
  [runc]=runc
  [busybox]=busybox-static
  [gcc]=gcc
)
# files -> Debian package (libraries and plugins are not commands)
declare -A FILES=(
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [/usr/lib/cni/host-local]=containernetworking-plugins
  [/usr/lib/cni/loopback]=containernetworking-plugins
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
)
# buildah's chroot re-exec drops LD_LIBRARY_PATH, so gpgme must be a system library.
LIBRARIES=(libgpgme.so.11)

log() { printf '[install-tools] %s\n' "$*" >&2; }

missing_packages() {
  local name
  for name in "${!TOOLS[@]}"; do
    command -v "$name" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$name" \
      >/dev/null 2>&1 || echo "${TOOLS[$name]}"
  done
  for name in "${!FILES[@]}"; do
    [[ -e "$name" ]] || echo "${FILES[$name]}"
  done
  # The cache is read whole first: `ldconfig -p | grep -q` under pipefail fails at random when
  # grep exits early and ldconfig dies of SIGPIPE.
  local cache
  cache="$(PATH="$PATH:/usr/sbin:/sbin" ldconfig -p 2>/dev/null || true)"
  for name in "${LIBRARIES[@]}"; do
    [[ "$cache" == *"$name"* ]] || echo libgpgme11
  done
}

main() {
  local packages
  packages="$(missing_packages | sort -u | tr '\n' ' ')"
  packages="${packages% }"
  if [[ -z "$packages" ]]; then
    return 0
  fi
  if [[ "${1:-}" == "--check" ]]; then
    log "missing Debian packages: $packages"
    return 1
  fi
  if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    log "missing Debian packages: $packages (install them as root with apt-get)"
    return 1
  fi
  log "installing $packages"
  export DEBIAN_FRONTEND=noninteractive
  # No service may start from a package's postinst: containerd runs only under the harness.
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap "rm -f '$policy'" EXIT
  fi
  # shellcheck disable=SC2086
  if ! apt-get install -y -qq --no-install-recommends $packages >/dev/null; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $packages >/dev/null
  fi
  packages="$(missing_packages | sort -u | tr '\n' ' ')"
  if [[ -n "${packages// /}" ]]; then
    log "still missing after apt-get install: $packages"
    return 1
  fi
  log "installed"
}

main "$@"
