#!/usr/bin/env python3
"""A real gRPC server for the balancer's gRPC test: `test.Echo` with one method of each kind, on raw
bytes (generic handlers, no protoc), and the standard health service (`grpc.health.v1.Health`).

    server.py --port PORT [--not-serving]

Every method sets a trailer `x-kind: <kind>` and echoes the client's `x-client` header as an initial
header `x-client-seen`; `Unary` answers `echo:<request>`, aborts with NOT_FOUND (and a message) for
`not-found`, sleeps for `sleep:<seconds>`, names its port for `whoami`, and for `deadline` answers the time left before the
client's deadline (`grpc-timeout`), or `none`. `--not-serving` makes the health service answer
NOT_SERVING for the whole server (""); `SetServing` with `0` or `1` changes that answer."""

import argparse
import sys
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


PORT = 0


def _begin(context, kind):
    seen = dict(context.invocation_metadata()).get("x-client", "")
    context.send_initial_metadata((("x-client-seen", seen),))
    context.set_trailing_metadata((("x-kind", kind),))


def unary(request, context):
    _begin(context, "unary")
    if request == b"not-found":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing: not-found")
    if request.startswith(b"sleep:"):
        time.sleep(float(request[len(b"sleep:"):]))
    if request == b"whoami":
        return b"port:%d" % PORT
    if request == b"deadline":
        left = context.time_remaining()
        return b"none" if left is None else ("%.3f" % left).encode()
    return b"echo:" + request


def server_stream(request, context):
    _begin(context, "server-stream")
    for i in range(int(request)):
        yield b"part-%d" % i


def client_stream(requests, context):
    _begin(context, "client-stream")
    return b"+".join(requests)


def bidi(requests, context):
    _begin(context, "bidi")
    for request in requests:
        yield b"re:" + request


def set_serving(health_servicer):
    def handler(request, context):
        serving = request == b"1"
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        health_servicer.set("", status)
        return b"serving" if serving else b"not-serving"

    return handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--not-serving", action="store_true")
    args = parser.parse_args()
    global PORT
    PORT = args.port
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    health_servicer = health.HealthServicer()
    handlers = {
        "SetServing": grpc.unary_unary_rpc_method_handler(set_serving(health_servicer)),
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
    status = health_pb2.HealthCheckResponse.NOT_SERVING if args.not_serving else health_pb2.HealthCheckResponse.SERVING
    health_servicer.set("", status)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if server.add_insecure_port("127.0.0.1:%d" % args.port) == 0:
        sys.exit("cannot listen on 127.0.0.1:%d" % args.port)
    server.start()
    print("grpc server listening on 127.0.0.1:%d" % args.port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
