"""What an operator watches on /metrics (Prometheus text format).

One registry per app, so two apps in one process (tests, the sandbox) keep separate counts.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

# Stream allows the ack one second: the buckets are dense below that.
ACK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
REPLY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhook_requests = Counter(
            "slashbots_webhook_requests", "Webhook requests by command and outcome (accepted, duplicate, "
            "busy, rate_limited, unknown_command, unauthorized, bad_request, ...).",
            ["command", "outcome"], registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "slashbots_ack_seconds", "Time to answer Stream's webhook.", buckets=ACK_BUCKETS, registry=self.registry,
        )
        self.replies_in_flight = Gauge(
            "slashbots_replies_in_flight", "Reply jobs running now.", registry=self.registry,
        )
        self.reply_seconds = Histogram(
            "slashbots_reply_seconds", "Time from accepting a command to its final text, by outcome.",
            ["command", "outcome"], buckets=REPLY_BUCKETS, registry=self.registry,
        )
        self.first_text_seconds = Histogram(
            "slashbots_first_text_seconds", "Time from accepting a command to its first visible text.",
            ["command"], buckets=REPLY_BUCKETS, registry=self.registry,
        )
        self.provider_errors = Counter(
            "slashbots_provider_errors", "Replies that did not end as the provider meant: refused, "
            "failed (ProviderError), crashed (any other exception), interrupted (shutdown).",
            ["command", "kind"], registry=self.registry,
        )
        self.replies_abandoned = Counter(
            "slashbots_replies_abandoned", "Replies shutdown could not end honestly in time (their message may "
            "still show as generating); the log names them.", registry=self.registry,
        )
        self.redis_up = Gauge(
            "slashbots_redis_up", "1 while Redis answers (state is shared), 0 during an outage.", registry=self.registry,
        )
        self.redis_failures = Counter(
            "slashbots_redis_failures", "Redis calls that failed or missed their deadline, by operation.",
            ["operation"], registry=self.registry,
        )
        self.local_decisions = Counter(
            "slashbots_local_decisions", "Decisions this instance made alone because Redis was away, by operation.",
            ["operation"], registry=self.registry,
        )
        self.duplicate_replies = Counter(
            "slashbots_duplicate_replies", "Replies stopped because another instance was already answering the "
            "same command (possible only while Redis is away).", ["command"], registry=self.registry,
        )
        self.replies_taken_over = Counter(
            "slashbots_replies_taken_over", "Replies this instance claimed from an instance that died or handed "
            "them back, and ran again.", registry=self.registry,
        )
        self.replies_left_generating = Counter(
            "slashbots_replies_left_generating", "Reply messages whose final text Stream refused until the deadline "
            "(they may still show as generating; the log names them).", registry=self.registry,
        )
        self.refusals = Counter(
            "slashbots_refusals", "Commands turned away in the ack, by command and reason: denied (allow/deny), "
            "over_budget, rate_limited, busy, restarting.", ["command", "reason"], registry=self.registry,
        )
        self.tokens = Counter(
            "slashbots_tokens", "Tokens answers used, as their providers reported them, by command, kind (prompt, "
            "completion) and source (reported by the model's server, or estimated from the characters).",
            ["command", "kind", "source"], registry=self.registry,
        )
        self.event_requests = Counter(
            "slashbots_events", "Event webhook requests by command and outcome: for the event as a whole (command "
            "\"\"): not_for_us, from_a_bot, ai_generated, a_command, ignored, stop, thread_unknown (settled after "
            "the answer, counted again then), unauthorized, bad_request; for each bot asked: accepted, duplicate, "
            "busy, rate_limited, restarting.", ["command", "outcome"], registry=self.registry,
        )
        self.events_ack_seconds = Histogram(
            "slashbots_events_ack_seconds", "Time to answer Stream's event webhook.", buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        self.public_refusals = Counter(
            "slashbots_public_refusals", "Mentions and thread follow-ups turned away, by command and reason; told: "
            "yes when the bot said so in the thread, no when that user had already been told within the minute.",
            ["command", "reason", "told"], registry=self.registry,
        )
        self.stream_calls = Counter(
            "slashbots_stream_calls", "Calls to Stream's API by operation and HTTP status (0: no answer).",
            ["operation", "status"], registry=self.registry,
        )

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
