"""Before and after a change: the same open-loop load on slashbots at an earlier commit and as it is now, in turns.

The earlier commit's `core/` and `plugins/` are exported (git archive) into a temporary
folder as the `slashbots` package, and put first on that server's PYTHONPATH; the other
server runs the working tree. Both serve the same bots.yaml (one echo bot) against one
Stream stand-in, each with its own redis-server when --redis is given, and take turns of
open-loop load, so a noisy spell lands on both. Prints ack latency, CPU per command
(the server's, once no reply runs), and with --redis the Redis commands per command.

    python benchmarks/ab.py --base HEAD~1 [--rate 300] [--seconds 3] [--turns 6] [--redis]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import subprocess
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.stats import summary_ms  # noqa: E402


def export(commit: str, folder: Path) -> Path:
    """`core/` and `plugins/` at ``commit`` as an importable `slashbots` package under ``folder``."""
    archive = subprocess.run(["git", "archive", commit, "core", "plugins"], cwd=servers.ROOT, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder / "src", filter="data")
    package = folder / "path" / "slashbots"
    package.parent.mkdir(parents=True)
    (folder / "src" / "core").rename(package)
    (folder / "src" / "plugins").rename(package / "plugins")
    return folder / "path"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the earlier commit")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    bots = webhooks.bots_yaml([webhooks.echo_bot()])
    with servers.workdir() as folder, contextlib.ExitStack() as stack:
        stream = stack.enter_context(servers.standin(folder))
        started, stores = {}, {}
        for name, path in (("before", export(args.base, folder / "base")), ("after", None)):
            env = {"PYTHONPATH": str(path)} if path else {}
            if args.redis:
                (folder / name).mkdir()
                stores[name] = stack.enter_context(servers.redis_server(folder / name))
                env["SLASHBOTS_REDIS_URL"] = stores[name].url
            started[name] = stack.enter_context(servers.slashbots(folder, bots, stream.url, name=name, env=env))
        latencies: dict[str, list[float]] = {name: [] for name in started}
        cpu = {name: 0.0 for name in started}
        sent = {name: 0 for name in started}
        commands = {name: 0 for name in started}
        for n in range(args.turns):
            for name, server in (started.items() if n % 2 == 0 else reversed(started.items())):
                calls = 0
                if name in stores:
                    with stores[name].client() as client:
                        calls = client.info("stats")["total_commands_processed"]
                before = servers.cpu_seconds(server.pid)
                result = servers.load(server.url, args.rate, args.seconds, f"{name}{n}", warmup=0)
                servers.wait_idle(server.url)
                cpu[name] += servers.cpu_seconds(server.pid) - before
                latencies[name] += result["latencies"]
                sent[name] += result["sent"]
                if name in stores:
                    with stores[name].client() as client:
                        commands[name] += client.info("stats")["total_commands_processed"] - calls - 1
        for name in started:
            ack = summary_ms(latencies[name])
            extra = f", Redis commands per command (those run by scripts included) {commands[name] / sent[name]:.2f}" if name in stores else ""
            print(f"{name:6} ({args.base if name == 'before' else 'working tree'}): ack p50 {ack['p50']:.1f} ms, "
                  f"p99 {ack['p99']:.1f} ms, max {ack['max']:.1f} ms, CPU per command "
                  f"{cpu[name] / sent[name] * 1000:.2f} ms{extra}")
        print(f"command: python benchmarks/ab.py --base {args.base} --rate {args.rate:g} --seconds {args.seconds:g} "
              f"--turns {args.turns}" + (" --redis" if args.redis else ""))


if __name__ == "__main__":
    main()
