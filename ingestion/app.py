"""``python -m ingestion``: the configured venues' trade frames into Kafka, unchanged, keyed by venue and symbol."""

from __future__ import annotations

import logging
import sys

from core import exits, logs
from core.kafka import librdkafka_config
from core.settings import Settings, SettingsError
from ingestion.config import connections, rest_urls
from ingestion.ingestor import Ingestor
from ingestion.metrics import Heartbeat, Metrics, serve
from ingestion.producer import FrameProducer

log = logging.getLogger("ingestion")

POLL_SECONDS = 0.5
# /healthz fails once the main loop, which comes round every POLL_SECONDS, has not for this long: no poll takes that,
# only a hang (a callback or a log write that blocks). The chart's liveness probe (3 failures 20 s apart) then
# restarts the pod.
STALL_SECONDS = 30.0


def main() -> int:
    logs.configure("ingestor")
    try:
        settings = Settings.from_env()
        wanted = connections(settings)
        fills = rest_urls(settings)
    except SettingsError as exc:
        log.error("bad settings", extra=logs.fields(error=str(exc)))
        return exits.MISCONFIGURED
    metrics = Metrics()
    producer = FrameProducer(
        librdkafka_config(settings),
        settings.kafka_topic,
        metrics,
        queue_frames=settings.ingestor_queue_frames,
        queue_mib=settings.ingestor_queue_mib,
        # A local venue serves recordings or synthetic trades (replay, up --source replay or synthetic), stamped at
        # times of their own.
        replay=bool(settings.venue_url),
    )
    ingestor = Ingestor(wanted, producer, metrics, rest_urls=fills)

    stop = logs.stop_on_signals(log)
    main_loop = Heartbeat("the main loop", STALL_SECONDS)

    def unready() -> list[str]:
        return ingestor.unready() + (["Kafka is not taking frames"] if producer.blocked else [])

    def unhealthy() -> list[str]:
        # While stopping, the loop has ended on purpose: the flush may outlast the bound.
        return [] if stop.is_set() else ingestor.unhealthy() + main_loop.stalled()

    server = serve(metrics, settings.ingestor_http_port, unready, unhealthy, settings.ingestor_http_host)
    log.info(
        "starting",
        extra=logs.fields(
            connections=[f"{c.label} {c.url}" for c in wanted],
            gap_fill_from=fills,
            topic=settings.kafka_topic,
            when_kafka_is_down="block: stop reading the venues once the queue is full, never drop",
            queue_frames=settings.ingestor_queue_frames,
            queue_mib=settings.ingestor_queue_mib,
        ),
    )
    ingestor.start()
    while not stop.is_set() and producer.fatal_error is None:
        producer.poll(POLL_SECONDS)
        main_loop.beat()
    if producer.fatal_error is not None:
        log.error(
            "the Kafka producer failed for good and delivers nothing any more: exiting, to be restarted",
            extra=logs.fields(error=str(producer.fatal_error)),
        )
        ingestor.stop()
        server.shutdown()
        return exits.FAILED
    ingestor.stop()
    undelivered = producer.flush(settings.ingestor_flush_seconds)
    server.shutdown()
    if undelivered:
        log.error("frames left undelivered at exit", extra=logs.fields(undelivered=undelivered))
        return exits.FAILED
    log.info("stopped, every frame delivered", extra=logs.fields(delivered=int(metrics.total("delivered_total"))))
    return exits.OK


if __name__ == "__main__":
    sys.exit(main())
