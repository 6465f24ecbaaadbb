"""Generated protobuf and gRPC stubs of annlib.v1 (service/protos/annlib/v1).

Regenerate with `python service/regenerate_stubs.py`; tests/test_service_stubs.py
fails when these files differ from what the protos generate.
"""
