"""Exit codes, one per kind of failure, the same for the `cryptolake` command, the ingestor and the layers' jobs, so
that whatever restarts them (`cryptolake up`, the Spark Operator, the kubelet) can tell which a restart may mend."""

from __future__ import annotations

from typing import Final

OK: Final = 0
# Something failed while running (a query, a service out of reach, no bar to show): a restart may mend it.
FAILED: Final = 1
# A bad setting or argument, or a layer's checkpoint and tables that disagree: nothing mends it but the user.
MISCONFIGURED: Final = 2
