#!/usr/bin/env python3
"""Sequential unary round trips with Python grpcio against the same echo server (raw bytes, no stubs)."""
import argparse
import json
import time

import grpc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--bytes", type=int, default=1024)
    p.add_argument("--seconds", type=float, default=5.0)
    a = p.parse_args()
    channel = grpc.insecure_channel(a.target)
    echo = channel.unary_unary("/bench.Echo/Echo", request_serializer=None, response_deserializer=None)
    payload = b"\x07" * a.bytes
    for _ in range(200):
        echo(payload)
    calls = 0
    start = time.perf_counter()
    end = start + a.seconds
    while time.perf_counter() < end:
        r = echo(payload)
        assert len(r) == a.bytes
        calls += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"client": "python-grpcio", "grpcio": grpc.__version__, "calls_per_s": calls / elapsed}))


if __name__ == "__main__":
    main()
