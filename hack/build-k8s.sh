#!/usr/bin/env bash
# Builds a Kubernetes control plane for the test suite from the Go module proxy:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet (the real-node
# tier), kwok and helm.
#
#   bash hack/build-k8s.sh            # build what is missing, print the bin dir
#   bash hack/build-k8s.sh --print    # print the bin dir only
#
# Output: ${TASKFLOW_K8S_CACHE:-$HOME/.cache/taskflow/k8s}/<k8s version>/bin/
# A binary whose version stamp matches is never rebuilt, so a warm run takes seconds.
set -euo pipefail

K8S_VERSION="v1.37.2"
ETCD_VERSION="v3.6.16"
KWOK_VERSION="v0.8.0"
HELM_VERSION="v3.22.0"

CACHE_ROOT="${TASKFLOW_K8S_CACHE:-$HOME/.cache/taskflow/k8s}"
VERSION_DIR="$CACHE_ROOT/$K8S_VERSION"
BIN_DIR="$VERSION_DIR/bin"
WORK_DIR="$VERSION_DIR/work"

if [[ "${1:-}" == "--print" ]]; then
  echo "$BIN_DIR"
  exit 0
fi

log() { printf '[build-k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

require_go() {
  if ! command -v go >/dev/null 2>&1; then
    if [[ -x /usr/local/go/bin/go ]]; then
      PATH="/usr/local/go/bin:$PATH"
    else
      log "go is not installed (need Go >= 1.26)"
      exit 1
    fi
  fi
}

setup_go_env() {
  export GOTOOLCHAIN=local
  export CGO_ENABLED=0
  export GOCACHE="$CACHE_ROOT/gocache"
  export GOMODCACHE="$CACHE_ROOT/gomod"
  export GOFLAGS="-mod=mod -modcacherw"
  export GOBIN=""
  mkdir -p "$GOCACHE" "$GOMODCACHE" "$BIN_DIR" "$WORK_DIR"
}

stamp_of() { echo "$BIN_DIR/.$1.version"; }

is_current() {
  local name="$1" version="$2" stamp
  stamp="$(stamp_of "$name")"
  [[ -x "$BIN_DIR/$name" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]
}

mark_built() { echo "$2" >"$(stamp_of "$1")"; }

# new_wrapper DIR MODULE VERSION: a throwaway main module that requires MODULE@VERSION,
# so packages of modules whose go.mod carries replace directives can be built.
new_wrapper() {
  local dir="$1" module="$2" version="$3"
  rm -rf "$dir"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<EOF
module taskflow.dev/hack/k8sbuild

go 1.26.0

require $module $version
EOF
}

module_file() {
  go mod download -json "$1@$2" | sed -n "s/^[[:space:]]*\"$3\": \"\(.*\)\",\{0,1\}$/\1/p"
}

# Each staging module k8s.io/X that k8s.io/kubernetes replaces with ./staging/src/k8s.io/X
# is published on its own as k8s.io/X v0.<minor>.<patch>.
add_staging_replaces() {
  local dir="$1" gomod staging_version modules
  gomod="$(module_file k8s.io/kubernetes "$K8S_VERSION" GoMod)"
  staging_version="v0.${K8S_VERSION#v1.}"
  modules="$(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/src/.*#\1#p' "$gomod")"
  if [[ -z "$modules" ]]; then
    log "no staging replace directives found in $gomod"
    exit 1
  fi
  if grep -E '^[[:space:]]*[^/[:space:]]+\S* => \.' "$gomod" | grep -v '/staging/src/' >/dev/null; then
    log "k8s.io/kubernetes $K8S_VERSION has local replace directives outside staging/"
    exit 1
  fi
  local godebug
  godebug="$(grep -E '^godebug ' "$gomod" || true)"
  [[ -n "$godebug" ]] && printf '\n%s\n' "$godebug" >>"$dir/go.mod"
  local args=()
  for m in $modules; do
    args+=("-replace=$m=$m@$staging_version")
  done
  (cd "$dir" && go mod edit "${args[@]}")
}

k8s_ldflags() {
  local minor build_date flags=("-s" "-w")
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  build_date="$(module_file k8s.io/kubernetes "$K8S_VERSION" Time)"
  [[ -z "$build_date" ]] && build_date="1970-01-01T00:00:00Z"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=(
      "-X $pkg.gitVersion=$K8S_VERSION"
      "-X $pkg.gitMajor=1"
      "-X $pkg.gitMinor=$minor"
      "-X $pkg.gitTreeState=clean"
      "-X $pkg.buildDate=$build_date"
    )
  done
  echo "${flags[*]}"
}

build_kubernetes() {
  local wanted=() name
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
    is_current "$name" "$K8S_VERSION" || wanted+=("$name")
  done
  [[ ${#wanted[@]} -eq 0 ]] && return 0
  log "building ${wanted[*]} $K8S_VERSION"
  local dir="$WORK_DIR/kubernetes" out="$WORK_DIR/out-kubernetes" pkgs=()
  new_wrapper "$dir" k8s.io/kubernetes "$K8S_VERSION"
  add_staging_replaces "$dir"
  for name in "${wanted[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  rm -rf "$out" && mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/" "${pkgs[@]}")
  for name in "${wanted[@]}"; do install_binary "$out/$name" "$name" "$K8S_VERSION"; done
}

# build_one NAME MODULE VERSION PACKAGE LDFLAGS
build_one() {
  local name="$1" module="$2" version="$3" pkg="$4" ldflags="$5"
  is_current "$name" "$version" && return 0
  log "building $name $version"
  local dir="$WORK_DIR/$name" out="$WORK_DIR/out-$name"
  new_wrapper "$dir" "$module" "$version"
  rm -rf "$out" && mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$name" "$pkg")
  install_binary "$out/$name" "$name" "$version"
}

# kwok ships no stages of its own when run standalone; install the default ones
# (node initialize + heartbeat with lease, pod ready/complete/delete) from the same module.
install_kwok_stages() {
  local target="$BIN_DIR/kwok-stages.yaml" stamp="$BIN_DIR/.kwok-stages.version" dir
  [[ -f "$target" && -f "$stamp" && "$(cat "$stamp")" == "$KWOK_VERSION" ]] && return 0
  dir="$(module_file sigs.k8s.io/kwok "$KWOK_VERSION" Dir)"
  local stages=(
    node/fast/node-initialize.yaml
    node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
    pod/fast/pod-ready.yaml
    pod/fast/pod-complete.yaml
    pod/fast/pod-delete.yaml
  )
  local stage
  {
    for stage in "${stages[@]}"; do
      echo "---"
      cat "$dir/kustomize/stage/$stage"
    done
  } >"$target.tmp"
  mv -f "$target.tmp" "$target"
  echo "$KWOK_VERSION" >"$stamp"
  log "installed $target ($KWOK_VERSION)"
}

install_binary() {
  local src="$1" name="$2" version="$3"
  mv -f "$src" "$BIN_DIR/.$name.tmp"
  mv -f "$BIN_DIR/.$name.tmp" "$BIN_DIR/$name"
  mark_built "$name" "$version"
  log "installed $BIN_DIR/$name ($version)"
}

write_versions() {
  cat >"$VERSION_DIR/versions.txt" <<EOF
kubernetes $K8S_VERSION
etcd $ETCD_VERSION
kwok $KWOK_VERSION
helm $HELM_VERSION
go $(go env GOVERSION)
EOF
}

main() {
  require_go
  mkdir -p "$CACHE_ROOT"
  exec 9>"$CACHE_ROOT/.lock"
  if ! flock -n 9; then
    log "another build holds $CACHE_ROOT/.lock; waiting"
    flock 9
  fi
  setup_go_env
  local start=$SECONDS
  build_one etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION" go.etcd.io/etcd/server/v3 ""
  build_kubernetes
  build_one kwok sigs.k8s.io/kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
  install_kwok_stages
  build_one helm helm.sh/helm/v3 "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  write_versions
  rm -rf "$WORK_DIR"
  log "done in $((SECONDS - start))s"
  echo "$BIN_DIR"
}

main "$@"
