#!/usr/bin/env bash
# Regenerate the Go stubs in gen/taskflowv1 from client/proto/taskflow/v1/tasks.proto.
#
# Usage: gen.sh [OUT_DIR]   (default: this directory; the stubs land in OUT_DIR/gen/taskflowv1)
#
# Needs protoc-gen-go and protoc-gen-go-grpc on PATH or in $(go env GOPATH)/bin:
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@latest
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@latest
# protoc itself comes from grpcio-tools: PYTHON (default python3) must have it installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${here}/../.." && pwd)"
out_dir="${1:-${here}}"
PYTHON="${PYTHON:-python3}"
PATH="${PATH}:$(go env GOPATH)/bin"

proto_root="${repo_root}/client/proto"
wkt_include="$("${PYTHON}" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"

"${PYTHON}" -m grpc_tools.protoc \
  -I "${proto_root}" \
  -I "${wkt_include}" \
  --plugin="protoc-gen-go=$(command -v protoc-gen-go)" \
  --plugin="protoc-gen-go-grpc=$(command -v protoc-gen-go-grpc)" \
  --go_out="${out_dir}" --go_opt=module=taskflow.dev/examples/go-client \
  --go-grpc_out="${out_dir}" --go-grpc_opt=module=taskflow.dev/examples/go-client \
  "${proto_root}/taskflow/v1/tasks.proto"
