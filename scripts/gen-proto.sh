#!/usr/bin/env bash
# Regenerate the Python stubs of the TaskFlow API from client/proto/taskflow/v1/tasks.proto.
#
# Usage: scripts/gen-proto.sh [OUT_DIR]
#   OUT_DIR defaults to client/taskflow_client/v1. The generated modules import each other
#   relatively, so they work as the package taskflow_client.v1.
# Environment: PYTHON (default: the repository's .venv python if present, else python3) must
# have grpcio-tools and mypy-protobuf installed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-${repo_root}/client/taskflow_client/v1}"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "${repo_root}/.venv/bin/python" ]]; then
    PYTHON="${repo_root}/.venv/bin/python"
  else
    PYTHON="python3"
  fi
fi

python_bin_dir="$(dirname "$(command -v "${PYTHON}")")"
find_plugin() {
  local name="$1"
  if [[ -x "${python_bin_dir}/${name}" ]]; then
    echo "${python_bin_dir}/${name}"
  elif command -v "${name}" >/dev/null 2>&1; then
    command -v "${name}"
  else
    echo "error: ${name} not found (pip install mypy-protobuf)" >&2
    return 1
  fi
}
mypy_plugin="$(find_plugin protoc-gen-mypy)"
mypy_grpc_plugin="$(find_plugin protoc-gen-mypy_grpc)"

proto_root="${repo_root}/client/proto"
wkt_include="$("${PYTHON}" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"

work_dir="$(mktemp -d)"
trap 'rm -rf "${work_dir}"' EXIT

"${PYTHON}" -m grpc_tools.protoc \
  -I "${proto_root}" \
  -I "${wkt_include}" \
  --plugin="protoc-gen-mypy=${mypy_plugin}" \
  --plugin="protoc-gen-mypy_grpc=${mypy_grpc_plugin}" \
  --python_out="${work_dir}" \
  --grpc_python_out="${work_dir}" \
  --mypy_out="${work_dir}" \
  --mypy_grpc_out="${work_dir}" \
  "${proto_root}/taskflow/v1/tasks.proto"

mkdir -p "${out_dir}"
for f in tasks_pb2.py tasks_pb2.pyi tasks_pb2_grpc.py tasks_pb2_grpc.pyi; do
  # The stubs are generated for the proto package path taskflow/v1; they ship as
  # taskflow_client.v1, so sibling imports become relative.
  sed -E \
    -e 's/^from taskflow\.v1 import tasks_pb2 as /from . import tasks_pb2 as /' \
    -e 's/^import taskflow\.v1\.tasks_pb2$/from . import tasks_pb2/' \
    -e 's/\btaskflow\.v1\.tasks_pb2\./tasks_pb2./g' \
    "${work_dir}/taskflow/v1/${f}" >"${out_dir}/${f}"
done
