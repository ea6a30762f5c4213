"""At Stream's ceiling: two instances keep 40 answers streaming for 60 s, against a stand-in enforcing Stream's limits.

The Stream stand-in runs with Stream's app rate limits on (benchmarks/standin_server.py
--rate-limits: Send Message and Update Message 1,000 a minute each and 33 a second, 429
beyond; partial updates share Update Message's bucket, an assumption). Two `slashbots serve`
instances share one redis-server, so they pace Stream message updates app-wide
(`server.stream_writes_per_second`, default 15, in core/shared/write_slot.lua). A driver
keeps 40 answers streaming: it starts commands, alternately on each instance, whenever the
instances' replies in flight fall below 40, for 60 s, then lets the last answers finish.
Each answer is a paced writer (slashbots.paced_writers) streaming for 20 s, so answers end
and new ones start all along.

Every message write the stand-in answered (429s too) is read back once the run is over:
updates per minute against the allowance, 429s against all writes, each answer's patches
(count and interval), and every final text against the text its command should get.

    python benchmarks/ceiling.py [--streams 40] [--seconds 60] [--answer-seconds 20]

Needs redis-server.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from benchmarks import servers, webhooks  # noqa: E402
from benchmarks.report import Section  # noqa: E402
from slashbots.leases import reply_message_id  # noqa: E402

STREAMS, SECONDS, ANSWER_SECONDS = 40, 60.0, 20.0
PIECE_EVERY = 0.2  # seconds between the model's pieces
START_EVERY = 0.1  # the driver looks at the replies in flight this often ...
MOST_PER_LOOK = 1  # ... and starts at most this many: 10 new answers a second while it catches up
ALLOWANCE = 1000  # Stream's Update Message limit, a minute, per app
BOT, COMMAND = "long-bot", "long"
PUBLIC_URL = "http://127.0.0.1:9/load-balancer"
UPDATES = ("UpdateMessage", "UpdateMessagePartial")


def bots_yaml(answer_seconds: float) -> str:
    bot = {"command": COMMAND, "description": "streams for a while", "provider": "writer",
           "channel_types": ["messaging"], "identity": {"id": BOT, "name": "Long bot"},
           "options": {"piece": "{args} ", "pieces": round(answer_seconds / PIECE_EVERY), "delay": PIECE_EVERY}}
    return webhooks.bots_yaml([bot], plugins=["slashbots.paced_writers"])


def expected_text(args: str, answer_seconds: float) -> str:
    return " ".join([args] * round(answer_seconds / PIECE_EVERY))


def drive(urls: list[str], streams: int, seconds: float) -> dict:
    """Keep ``streams`` answers running over the instances for ``seconds`` once there are that many."""
    started: list[tuple[str, str, float]] = []  # (message id, args, when its ack came)
    refused = 0
    full_at: float | None = None
    with httpx.Client(timeout=10) as client:
        while full_at is None or time.monotonic() - full_at < seconds:
            look = time.monotonic()
            running = sum(servers.metrics(url).get("in_flight", 0) for url in urls)
            if full_at is None and running >= streams:
                full_at = look
            for _ in range(min(int(streams - running), MOST_PER_LOOK)):
                n = len(started)
                args, message_id = f"a{n}", f"msg-ceiling-{n}"
                raw = webhooks.command(COMMAND, args, message_id)
                headers = {"Content-Type": "application/json", "X-Signature": webhooks.signature(raw),
                           "X-Api-Key": webhooks.KEY, "X-Webhook-Id": f"wh-ceiling-{n}"}
                answer = client.post(urls[n % len(urls)] + "/webhook", content=raw, headers=headers)
                if answer.status_code == 200 and answer.json()["message"].get("type") != "error":
                    started.append((message_id, args, time.monotonic()))
                else:
                    refused += 1
            time.sleep(max(START_EVERY - (time.monotonic() - look), 0))
    return {"started": started, "refused": refused, "full_at": full_at, "stopped_at": time.monotonic()}


def run(streams: int, seconds: float, answer_seconds: float) -> dict:
    env_of = {"SLASHBOTS_PUBLIC_URL": PUBLIC_URL}
    with servers.workdir() as folder, servers.redis_server(folder) as store, \
            servers.standin(folder, rate_limits=True) as stream, \
            servers.slashbots(folder, bots_yaml(answer_seconds), stream.url, name="a",
                              env={**env_of, "SLASHBOTS_REDIS_URL": store.url}) as a, \
            servers.slashbots(folder, bots_yaml(answer_seconds), stream.url, name="b",
                              env={**env_of, "SLASHBOTS_REDIS_URL": store.url}) as b:
        neighbours = servers.Neighbours()
        neighbours.watch(a.pid, b.pid, store.pid, stream.pid)
        began = time.monotonic()
        driven = drive([a.url, b.url], streams, seconds)
        drained = max(servers.wait_idle(url, timeout=answer_seconds * 4) for url in (a.url, b.url))
        per_instance = [servers.metrics(url).get("accepted", 0) for url in (a.url, b.url)]
        troubles = {name: sum(servers.metric_total(url, f"slashbots_{name}") for url in (a.url, b.url))
                    for name in ("redis_failures", "local_decisions", "replies_taken_over", "replies_left_generating")}
        cores = neighbours.cores()
        writes = httpx.get(stream.url + "/_bench/writes", timeout=120).json()["writes"]
        limited = httpx.get(stream.url + "/_bench/rate_limited", timeout=30).json()
        stored = httpx.get(stream.url + "/_bench/messages", params={"cid": webhooks.CID, "user": BOT},
                           timeout=120).json()["messages"]
    return {"streams": streams, "seconds": seconds, "answer_seconds": answer_seconds, "began": began,
            "drained": drained, "per_instance": per_instance, "troubles": troubles, "neighbours": cores,
            "writes": writes, "rate_limited": limited, "stored": stored, **driven}


def analyse(result: dict) -> dict:
    writes = [w for w in result["writes"] if w[4] >= result["began"]]  # not the start-up sync's
    began, full_at, stopped_at = result["began"], result["full_at"], result["stopped_at"]
    window = (full_at, full_at + result["seconds"])
    ok = [w for w in writes if w[2] < 400]
    refused = [w for w in writes if w[2] == 429]
    updates_in_window = sum(1 for w in ok if w[0] in UPDATES and window[0] <= w[4] < window[1])
    minutes = []
    end = max(w[4] for w in writes)
    start = began
    while start < end:
        stop = min(start + 60, end + 1e-9)
        inside = [w for w in writes if start <= w[4] < stop]
        minutes.append({
            "from": start - began, "to": stop - began,
            "updates": sum(1 for w in inside if w[0] in UPDATES and w[2] < 400),
            "sends": sum(1 for w in inside if w[0] == "SendMessage" and w[2] < 400),
            "refused": sum(1 for w in inside if w[2] == 429),
        })
        start = stop
    busiest_second: dict[int, int] = {}
    for w in ok:
        if w[0] in UPDATES:
            busiest_second[int(w[4] - began)] = busiest_second.get(int(w[4] - began), 0) + 1
    # Each answer's writes, by its first message's id (answers here fit one message).
    by_message: dict[str, list[list]] = {}
    for w in ok:
        by_message.setdefault(w[1], []).append(w)
    answers = []
    for message_id, args, _ in result["started"]:
        reply = reply_message_id(f"{COMMAND}:{message_id}", 0)
        mine = sorted(by_message.get(reply, []), key=lambda w: w[4])
        if not mine:
            answers.append({"args": args, "reply": reply, "inside": False, "patches": 0, "intervals": []})
            continue
        first, last = mine[0][4], mine[-1][4]
        patches = [w[4] for w in mine if w[0] in UPDATES and w[3]]  # interim: generating still true
        answers.append({
            "args": args, "reply": reply, "patches": len(patches), "life": last - first,
            "intervals": [later - earlier for earlier, later in zip(patches, patches[1:])],
            "inside": window[0] <= first and last <= window[1],
        })
    stored = {m["id"]: m for m in result["stored"]}
    finals_ok = sum(
        1 for message_id, args, _ in result["started"]
        if (m := stored.get(reply_message_id(f"{COMMAND}:{message_id}", 0))) is not None
        and not m["generating"] and m["text"] == expected_text(args, result["answer_seconds"])
    )
    return {"window": window, "updates_in_window": updates_in_window, "ok": len(ok), "refused": len(refused),
            "all": len(writes), "minutes": minutes, "answers": answers, "finals_ok": finals_ok,
            "generating": sum(1 for m in result["stored"] if m["generating"]),
            "busiest_second": max(busiest_second.values(), default=0), "extra_messages": len(stored) - len(result["started"]),
            "ran_for": stopped_at - began}


def spread(values: list[float], unit: str = "", digits: int = 0) -> str:
    if not values:
        return "-"
    return " / ".join(f"{v:.{digits}f}{unit}" for v in (min(values), statistics.median(values), max(values)))


def report(result: dict, command: str) -> Section:
    found = analyse(result)
    seconds, streams = result["seconds"], result["streams"]
    section = Section(f"10. At Stream's ceiling: two instances, {streams} answers streaming, limits enforced", command)
    section.text.append(
        f"Two `slashbots serve` instances on one redis-server; the Stream stand-in enforces Stream's app limits "
        f"(1,000 Send Message and 1,000 Update Message a minute, 33 a second; partial updates counted as Update "
        f"Message, an assumption). A driver kept {streams} answers streaming for {seconds:g} s from the moment "
        f"{streams} first ran, starting a command (alternately on each instance) whenever the instances' replies "
        f"in flight fell below {streams}; each answer streams a piece every {PIECE_EVERY * 1000:.0f} ms for "
        f"{result['answer_seconds']:g} s (default `update_interval_ms` 250, default `stream_writes_per_second` 15, "
        f"shared by both instances in Redis). {len(result['started'])} answers were started "
        f"({result['per_instance'][0]:.0f} on A, {result['per_instance'][1]:.0f} on B; {result['refused']} refused); "
        f"the last finished {result['drained']:.1f} s after the driver stopped. Times below are from the first "
        f"command; minutes are 60 s spans from it, not Stream's clock-aligned windows."
    )
    section.table(
        ["minute", "updates (all instances)", "sends", "429s", "updates / allowance"],
        [[f"{m['from']:.0f}–{m['to']:.0f} s", m["updates"], m["sends"], m["refused"],
          f"{m['updates'] / (ALLOWANCE * (m['to'] - m['from']) / 60):.0%}"]
         for m in found["minutes"]],
    )
    inside = [a for a in found["answers"] if a["inside"]]
    intervals = [i for a in inside for i in a["intervals"]]
    means = [statistics.mean(a["intervals"]) for a in inside if a["intervals"]]
    section.table(
        ["answers wholly inside the window", "patches per answer (min / median / max)",
         "mean patch interval per answer (min / median / max)", "patch intervals, all (p50 / p99 / max)"],
        [[len(inside), spread([a["patches"] for a in inside]), spread(means, " s", 2),
          " / ".join(f"{v:.2f} s" for v in _quantiles(intervals))]],
    )
    window_rate = found["updates_in_window"] / (seconds / 60)
    troubles = result["troubles"]
    section.text.append(
        f"In the {seconds:g} s window with {streams} answers streaming: {found['updates_in_window']} updates, "
        f"{window_rate:.0f} a minute ({window_rate / ALLOWANCE:.0%} of the allowance); busiest second "
        f"{found['busiest_second']} updates. 429s by operation: {result['rate_limited'] or 'none'}. Final texts "
        f"exact and final: {found['finals_ok']} / {len(result['started'])}; messages left generating: "
        f"{found['generating']}; messages beyond one per answer: {found['extra_messages']}. Redis calls failed or "
        f"late: {troubles['redis_failures']:.0f}; local decisions: {troubles['local_decisions']:.0f}; replies "
        f"claimed again: {troubles['replies_taken_over']:.0f}. The rest of the machine used "
        f"{result['neighbours']:.2f} cores on average."
    )
    share = found["refused"] / found["all"] if found["all"] else 0.0
    section.target("429s ≤ 1% of message writes", f"{found['refused']} of {found['all']} ({share:.2%})", share <= 0.01)
    section.target(f"updates use ≥ 80% of the allowance while {streams} answers stream",
                   f"{window_rate:.0f}/min ({window_rate / ALLOWANCE:.0%})", window_rate >= 0.8 * ALLOWANCE)
    section.target("every final text lands", f"{found['finals_ok']} / {len(result['started'])}",
                   found["finals_ok"] == len(result["started"]) and found["generating"] == 0)
    counts = [a["patches"] for a in inside]
    median = statistics.median(counts) if counts else 0
    fair = bool(counts) and min(counts) >= 0.75 * median and max(counts) <= 1.25 * median
    section.target("patches shared fairly: every answer's patch count within ±25% of the median (answers "
                   "wholly inside the window)", f"{spread(counts)} (median {median:g})", fair)
    return section


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[min(int(len(ordered) * 0.99), len(ordered) - 1)], ordered[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=STREAMS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--answer-seconds", type=float, default=ANSWER_SECONDS)
    args = parser.parse_args()
    command = (f"python benchmarks/ceiling.py --streams {args.streams} --seconds {args.seconds:g} "
               f"--answer-seconds {args.answer_seconds:g}")
    print(report(run(args.streams, args.seconds, args.answer_seconds), command).markdown())


if __name__ == "__main__":
    main()
