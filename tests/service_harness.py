"""Runs the real annlib server (annlib.service.server.serve) for the service
tests, plus one test-only interceptor: a call carrying metadata
`x-test-delay-ms: N` sleeps N ms before it is handled, so a test can have a
call in flight when it sends SIGTERM or let a deadline pass.

    python tests/service_harness.py [annlib serve options]
"""
import sys
import time

import grpc

from annlib.service.options import add_arguments, options_from_args
from annlib.service.server import serve


class DelayInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        delay = dict(handler_call_details.invocation_metadata or ()).get("x-test-delay-ms")
        if delay is not None:
            time.sleep(int(delay) / 1000)
        return continuation(handler_call_details)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    sys.exit(serve(options_from_args(parser.parse_args()), extra_interceptors=[DelayInterceptor()]))
