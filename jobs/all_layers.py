"""Bronze, silver and gold in one Spark driver: one JVM instead of three, for machines short of memory."""

from __future__ import annotations

import sys

from jobs import bronze, gold, silver
from jobs.runtime import run_layer


def main() -> int:
    return run_layer("layers", bronze.STAGE, silver.STAGE, gold.STAGE)


if __name__ == "__main__":
    sys.exit(main())
