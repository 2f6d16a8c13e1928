"""The ``event`` of the log lines that something reads back: whoever writes one and whoever matches it both import
its name from here, so that renaming an event cannot break a reader (`cryptolake up`'s status, the dashboard, the
benchmark) while each side's tests stay green."""

from __future__ import annotations

from typing import Final

# The layers' jobs (jobs/runtime.py).
QUERY_STARTED: Final = "query started"
BATCH: Final = "batch"  # one line per micro-batch, with its query, batch id and row counts
WAITING_FOR_UPSTREAM: Final = "waiting for the upstream table"
QUERY_FAILED: Final = "query failed"
STATE_MISMATCH: Final = "checkpoint and tables disagree"  # the layer refuses to start (exit code 2)
SPARK_UI: Final = "spark ui"
RESUMED: Final = "resuming past a gap"  # bronze starts a new checkpoint where `cryptolake resume` said, gaps named
MAINTENANCE: Final = "table maintained"  # a round of a table's lifecycle: rows expired, files vacuumed
MAINTENANCE_FAILED: Final = "table maintenance failed"

# The ingestor's connections (ingestion/connection.py).
CONNECTED: Final = "connected"
CONNECTION_LOST: Final = "connection lost, reconnecting"
