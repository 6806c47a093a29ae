"""Generated gRPC stubs of the TaskFlow API, version 1 (see ``scripts/gen-proto.sh``)."""
