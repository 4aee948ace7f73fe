#!/usr/bin/env python3
"""The gRPC client of the balancer's gRPC test: calls `test.Echo` (see server.py) through TARGET over
h2c and prints one JSON object, one entry per call: its status code name, details, response(s),
initial and trailing metadata.

    client.py TARGET [all|unary|whoami|not-serving|serving]

`unary` makes one plain unary call (what a backend that is out of rotation answers); `all` makes
every kind of call, a NOT_FOUND, a passed deadline and a deadline that runs out; `whoami` makes
ten calls that name the server's port; `not-serving` and `serving` tell the server's health
service what to answer from now on (`SetServing`)."""

import json
import sys

import grpc


def _meta(pairs):
    return {k: v for k, v in (pairs or ()) if not k.startswith("grpc-")}


def _done(call, response):
    if isinstance(response, list):
        response = [r.decode() for r in response]
    elif response is not None:
        response = response.decode()
    return {
        "code": call.code().name,
        "details": call.details(),
        "response": response,
        "initial": _meta(call.initial_metadata()),
        "trailing": _meta(call.trailing_metadata()),
    }


def _run(fn):
    try:
        return fn()
    except grpc.RpcError as e:
        return {
            "code": e.code().name,
            "details": e.details(),
            "response": None,
            "initial": _meta(e.initial_metadata()),
            "trailing": _meta(e.trailing_metadata()),
        }


def main():
    target = sys.argv[1]
    which = sys.argv[2] if len(sys.argv) > 2 else "all"
    meta = (("x-client", "c1"),)
    results = {}
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary("/test.Echo/Unary")
        server_stream = channel.unary_stream("/test.Echo/ServerStream")
        client_stream = channel.stream_unary("/test.Echo/ClientStream")
        bidi = channel.stream_stream("/test.Echo/Bidi")

        def unary_call(request, timeout=10):
            response, call = unary.with_call(request, timeout=timeout, metadata=meta)
            return _done(call, response)

        def stream_call(stub, request):
            call = stub(request, timeout=10, metadata=meta)
            return _done(call, list(call))

        if which in ("not-serving", "serving"):
            set_serving = channel.unary_unary("/test.Echo/SetServing")
            flag = b"1" if which == "serving" else b"0"
            results["set_serving"] = _run(lambda: _done(*reversed(set_serving.with_call(flag, timeout=10))))
            print(json.dumps(results))
            return
        if which == "whoami":
            results["whoami"] = [unary(b"whoami", timeout=10).decode() for _ in range(10)]
            print(json.dumps(results))
            return
        results["unary"] = _run(lambda: unary_call(b"hello"))
        if which == "all":
            big = b"x" * (1 << 20)
            results["unary_big"] = _run(lambda: unary_call(big))
            results["server_stream"] = _run(lambda: stream_call(server_stream, b"3"))
            results["client_stream"] = _run(
                lambda: _done(*reversed(client_stream.with_call(iter([b"a", b"b", b"c"]), timeout=10, metadata=meta)))
            )
            results["bidi"] = _run(lambda: stream_call(bidi, iter([b"x", b"y"])))
            results["not_found"] = _run(lambda: unary_call(b"not-found"))
            results["deadline"] = _run(lambda: unary_call(b"deadline", timeout=7))
            results["deadline_exceeded"] = _run(lambda: unary_call(b"sleep:3", timeout=0.5))
    if results.get("unary_big", {}).get("response"):
        results["unary_big"]["response"] = len(results["unary_big"]["response"])
    print(json.dumps(results))


if __name__ == "__main__":
    main()
