#!/usr/bin/env bash
# Builds TaskFlow's container images without a Docker engine, each cached by a hash of what
# goes into it:
#
#   base    Debian bookworm + python3.11 from Debian packages (mmdebstrap)
#   api     Dockerfile (API server + operator) on that base       (buildah bud)
#   worker  worker-image/Dockerfile (worker + example handlers)   (buildah bud)
#   pause   the Kubernetes pod sandbox: pause.c of the kubernetes module, linked statically
#   busybox Debian's busybox-static with its applet links (a test image)
#
#   bash hack/build-images.sh            # build what is missing, then print the list below
#   bash hack/build-images.sh --print    # print the list only (hashes from the sources)
#
# The list is one line per image: NAME REFERENCE ARCHIVE, where ARCHIVE is a docker-archive tar
# (`ctr -n k8s.io images import ARCHIVE`, `docker load -i ARCHIVE`) that carries REFERENCE.
# Output: ${TASKFLOW_IMAGE_CACHE:-$HOME/.cache/taskflow/images}/; an archive whose hash matches
# is never rebuilt; archives of other hashes go after a day unused. The tools come from Debian
# packages (hack/install-tools.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$PWD"
CACHE="${TASKFLOW_IMAGE_CACHE:-${TASKFLOW_CACHE:-$HOME/.cache/taskflow}/images}"
STORAGE="$CACHE/storage"
SUITE=bookworm
MIRROR="${TASKFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${TASKFLOW_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BASE_PACKAGES=(python3 python3-venv ca-certificates passwd)
# Source files the Dockerfiles copy (keep in step with their COPY lines and .dockerignore).
CONTEXT_PATHS=(pyproject.toml README.md requirements client taskflow worker-image/taskflow_worker operator)
CA_BUNDLE="${TASKFLOW_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
PRUNE_DAYS=1

log() { printf '[build-images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

sha() { sha256sum | cut -c1-16; }

buildah_() {
  buildah --root "$STORAGE/root" --runroot "$STORAGE/run" --storage-driver overlay "$@"
}

# --- hashes: what goes into each image --------------------------------------------------------

recipe_of() {  # the text of one function of this script: a change to a recipe rebuilds it
  declare -f "$1"
}

base_hash() {
  { echo "$SUITE ${BASE_PACKAGES[*]}"; recipe_of build_base; } | sha
}

context_digest() {
  local files
  if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files="$(git -C "$REPO" ls-files -co --exclude-standard -- "${CONTEXT_PATHS[@]}")"
  else
    files="$(find "${CONTEXT_PATHS[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc')"
  fi
  # shellcheck disable=SC2086
  echo "$files" | LC_ALL=C sort | while read -r f; do
    [[ -f "$f" ]] && printf '%s %s\n' "$f" "$(sha256sum <"$f" | cut -d' ' -f1)"
  done | sha
}

app_hash() {  # app_hash DOCKERFILE
  {
    base_hash
    context_digest
    cat "$1" .dockerignore
    recipe_of build_app
  } | sha
}

pause_source() {
  local go_bin k8s_cache version
  go_bin="$(command -v go || echo /usr/local/go/bin/go)"
  k8s_cache="${TASKFLOW_K8S_CACHE:-$HOME/.cache/taskflow/k8s}"
  version="$(sed -n 's/^K8S_VERSION="\(.*\)"$/\1/p' hack/build-k8s.sh)"
  GOMODCACHE="$k8s_cache/gomod" GOFLAGS="-mod=mod -modcacherw" GOTOOLCHAIN=local \
    "$go_bin" mod download -json "k8s.io/kubernetes@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

pause_hash() {
  { sha256sum <"$(pause_source)/build/pause/linux/pause.c"; recipe_of build_pause; } | sha
}

busybox_hash() {
  { dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || true; recipe_of build_busybox; } |
    sha
}

# --- builds -----------------------------------------------------------------------------------

# commit CONTAINER REFERENCE ARCHIVE: commit a working container and write its archive.
commit() {
  local ctr="$1" ref="$2" archive="$3"
  buildah_ commit --quiet --rm "$ctr" "$ref" >/dev/null
  save "$ref" "$archive"
}

save() {
  local ref="$1" archive="$2"
  rm -f "$archive.tmp"
  buildah_ push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >/dev/null
  mv -f "$archive.tmp" "$archive"
}

# ensure_in_storage REFERENCE ARCHIVE: the image in buildah's storage (for FROM), reloaded from
# its archive when the storage was cleaned.
ensure_in_storage() {
  buildah_ inspect --type image "$1" >/dev/null 2>&1 && return 0
  buildah_ pull --quiet "docker-archive:$2" >/dev/null
}

build_base() {
  local ref="$1" archive="$2" work
  work="$(mktemp -d "$CACHE/.base-XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  log "base: mmdebstrap $SUITE + ${BASE_PACKAGES[*]}"
  mmdebstrap --quiet --variant=minbase --format=tar \
    --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  local ctr
  ctr="$(buildah_ from --quiet scratch)"
  buildah_ add --quiet "$ctr" "$work/rootfs.tar" / >/dev/null
  buildah_ config --env LANG=C.UTF-8 --cmd python3 \
    --label org.opencontainers.image.description="Debian $SUITE with python3 (TaskFlow base)" \
    "$ctr"
  commit "$ctr" "$ref" "$archive"
}

build_app() {
  local ref="$1" archive="$2" dockerfile="$3" base_ref="$4"
  local volumes=()
  # A TLS-intercepting proxy on the way to the package index: trust what the host trusts.
  [[ -f "$CA_BUNDLE" ]] && volumes=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
  log "$ref: buildah bud -f $dockerfile"
  buildah_ bud --quiet --isolation chroot --pull=never --layers=false \
    --build-arg "BASE=$base_ref" "${volumes[@]}" \
    -f "$dockerfile" -t "$ref" . >/dev/null
  save "$ref" "$archive"
  buildah_ rmi "$ref" >/dev/null  # the archive is the cache; FROM needs only the base
}

build_pause() {
  local ref="$1" archive="$2" work ctr
  work="$(mktemp -d "$CACHE/.pause-XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  log "$ref: gcc -static pause.c"
  gcc -Os -static -Wall -o "$work/pause" "$(pause_source)/build/pause/linux/pause.c"
  strip "$work/pause"
  ctr="$(buildah_ from --quiet scratch)"
  buildah_ copy --quiet "$ctr" "$work/pause" /pause >/dev/null
  buildah_ config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
  commit "$ctr" "$ref" "$archive"
}

build_busybox() {
  local ref="$1" archive="$2" work ctr applet
  work="$(mktemp -d "$CACHE/.busybox-XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  log "$ref: busybox-static"
  mkdir -p "$work/root/bin" "$work/root/tmp"
  cp /bin/busybox "$work/root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [[ "$applet" == busybox ]] || ln -s busybox "$work/root/bin/$applet"
  done
  ctr="$(buildah_ from --quiet scratch)"
  buildah_ copy --quiet "$ctr" "$work/root" / >/dev/null
  buildah_ config --env PATH=/bin --cmd sh "$ctr"
  commit "$ctr" "$ref" "$archive"
}

# --- the list ---------------------------------------------------------------------------------

declare -A REF ARCHIVE

plan() {
  local h
  h="$(base_hash)"
  REF[base]="localhost/taskflow-base:$h" ARCHIVE[base]="$CACHE/base-$h.tar"
  h="$(app_hash Dockerfile)"
  REF[api]="localhost/taskflow:$h" ARCHIVE[api]="$CACHE/taskflow-$h.tar"
  h="$(app_hash worker-image/Dockerfile)"
  REF[worker]="localhost/taskflow-worker:$h" ARCHIVE[worker]="$CACHE/taskflow-worker-$h.tar"
  h="$(pause_hash)"
  REF[pause]="localhost/taskflow-pause:$h" ARCHIVE[pause]="$CACHE/pause-$h.tar"
  h="$(busybox_hash)"
  REF[busybox]="localhost/taskflow-busybox:$h" ARCHIVE[busybox]="$CACHE/busybox-$h.tar"
}

print_list() {
  local name
  for name in base api worker pause busybox; do
    echo "$name ${REF[$name]} ${ARCHIVE[$name]}"
  done
}

main() {
  mkdir -p "$CACHE"
  if [[ "${1:-}" == "--print" ]]; then
    plan
    print_list
    return 0
  fi
  bash hack/install-tools.sh
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE/.lock; waiting"
    flock 9
  fi
  local start=$SECONDS
  plan
  [[ -f "${ARCHIVE[base]}" ]] || build_base "${REF[base]}" "${ARCHIVE[base]}"
  local name built=()
  for name in api worker; do
    [[ -f "${ARCHIVE[$name]}" ]] && continue
    ensure_in_storage "${REF[base]}" "${ARCHIVE[base]}"
    local dockerfile=Dockerfile
    [[ "$name" == worker ]] && dockerfile=worker-image/Dockerfile
    build_app "${REF[$name]}" "${ARCHIVE[$name]}" "$dockerfile" "${REF[base]}"
    built+=("$name")
  done
  [[ -f "${ARCHIVE[pause]}" ]] || build_pause "${REF[pause]}" "${ARCHIVE[pause]}"
  [[ -f "${ARCHIVE[busybox]}" ]] || build_busybox "${REF[busybox]}" "${ARCHIVE[busybox]}"
  prune
  log "done in $((SECONDS - start))s"
  print_list
}

# Archives of other hashes (other checkouts share the cache) go once unused for PRUNE_DAYS.
prune() {
  local keep=() name f
  for name in "${!ARCHIVE[@]}"; do
    keep+=("${ARCHIVE[$name]}")
    touch "${ARCHIVE[$name]}"
  done
  while read -r f; do
    [[ " ${keep[*]} " == *" $f "* ]] || rm -f "$f"
  done < <(find "$CACHE" -maxdepth 1 -name '*.tar' -mmin "+$((PRUNE_DAYS * 1440))")
  buildah_ rmi --prune >/dev/null 2>&1 || true
}

main "$@"
