"""What one Redis call costs the caller: redis-py's pooled asyncio calls against the same calls pipelined.

slashbots makes its Redis calls one coroutine each, through redis-py's connection pool
(core/shared/redis_state.py): each borrows a connection, so N calls at once hold N
connections. Here a small claim script (EXISTS, then SET with a TTL) runs ROUNDS times,
`at once` calls a round, first that way, then as one non-transactional pipeline a round
(one connection, one write, one read: what auto-pipelining would send). Prints the
calling process's CPU per call and the connections the pool opened.

    python benchmarks/redis_calls.py [--calls 3000]

Needs redis-server.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis.asyncio as aredis  # noqa: E402

from benchmarks import servers  # noqa: E402

CLAIM = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end redis.call('SET', KEYS[1], '1', 'PX', 600000) return 1"


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, calls: int) -> list[tuple[int, float, float, int]]:
    client = aredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0, health_check_interval=0)
    script = client.register_script(CLAIM)
    await script(keys=["warm"], args=[])
    rows = []
    for at_once in (1, 10, 50):
        rounds = calls // at_once
        began = cpu()
        for n in range(rounds):
            await asyncio.gather(*(script(keys=[f"pooled:{at_once}:{n}:{i}"], args=[]) for i in range(at_once)))
        pooled = (cpu() - began) / (rounds * at_once)
        began = cpu()
        for n in range(rounds):
            pipe = client.pipeline(transaction=False)
            for i in range(at_once):
                pipe.evalsha(script.sha, 1, f"piped:{at_once}:{n}:{i}")
            await pipe.execute()
        piped = (cpu() - began) / (rounds * at_once)
        pool = client.connection_pool
        rows.append((at_once, pooled, piped, len(pool._available_connections) + len(pool._in_use_connections)))
    await client.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    with servers.workdir() as folder, servers.redis_server(folder) as store:
        rows = asyncio.run(measure(store.url, args.calls))
    print("| calls at once | pooled: CPU per call | pipelined: CPU per call | connections the pool holds after |")
    print("|---|---|---|---|")
    for at_once, pooled, piped, connections in rows:
        print(f"| {at_once} | {pooled * 1e6:.0f} µs | {piped * 1e6:.0f} µs | {connections} |")
    print(f"\nReproduce: `python benchmarks/redis_calls.py --calls {args.calls}`")


if __name__ == "__main__":
    main()
