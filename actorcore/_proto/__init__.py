"""Generated protobuf and gRPC stubs (from proto/; see generate.py). Do not edit by hand."""
