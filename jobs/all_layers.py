"""Bronze, silver and gold in one Spark driver: one JVM instead of three, for machines short of memory."""

from __future__ import annotations

import sys

from core.layers import BRONZE_TABLE
from jobs import bronze, gold, silver
from jobs.runtime import Stage, run_layer


def main() -> int:
    return run_layer("layers", Stage(bronze.start), Stage(silver.start, BRONZE_TABLE), *gold.STAGES)


if __name__ == "__main__":
    sys.exit(main())
