"""Benchmark: checking a drand quicknet round's BLS signature (core.drand.verify_signature).

    uv run python benchmarks/bench_beacon.py [--repeat 200]

A scheduled draw checks one round (twice: the relay client, then the draw), and so does every
``inspectbot verify``: the cost is per draw, not per entity. Prints one JSON line: the median and
best time of a verification of a real recorded quicknet round, of a failing one (another round's
signature), and of a local test chain's signature (core.drand.TestChain.sign).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from core import drand
from domain import beacon
from simulators.drand import QUICKNET_RECORDED


def timed(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_ms": round(statistics.median(times) * 1000, 3), "best_ms": round(min(times) * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    sig = QUICKNET_RECORDED[1_000_000]
    assert drand.verify_signature(beacon.QUICKNET_PUBLIC_KEY, 1_000_000, sig)
    chain = drand.test_chain(1_700_000_000)
    print(
        json.dumps(
            {
                "bench": "beacon",
                "repeat": repeat,
                "verify_valid": timed(
                    lambda: drand.verify_signature(beacon.QUICKNET_PUBLIC_KEY, 1_000_000, sig), repeat
                ),
                "verify_invalid": timed(
                    lambda: drand.verify_signature(beacon.QUICKNET_PUBLIC_KEY, 999_999, sig), repeat
                ),
                "test_chain_sign": timed(lambda: chain.sign(12345), repeat),
            }
        )
    )


if __name__ == "__main__":
    main()
