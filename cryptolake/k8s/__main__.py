"""``python -m cryptolake.k8s settings [--check]`` regenerates the chart's settings file; ``chart-docs [--check]``
the charts' READMEs; ``tools`` installs the pinned Kubernetes tools and prints where they are."""

from __future__ import annotations

import argparse
import sys
import time

from cryptolake.k8s import chartdocs, chartgen, tools


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryptolake.k8s", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    settings = sub.add_parser("settings", help="write charts/cryptolake/files/settings.yaml from the settings model")
    settings.add_argument("--check", action="store_true", help="only report whether the committed file is current")
    docs = sub.add_parser("chart-docs", help="write charts/*/README.md with helm-docs from each chart's values.yaml")
    docs.add_argument("--check", action="store_true", help="only report whether the committed READMEs are current")
    sub.add_parser("tools", help="install the tools pinned in k8s-tools.txt")
    args = parser.parse_args(argv)

    if args.command == "settings":
        if args.check:
            if chartgen.is_current():
                return 0
            print(f"{chartgen.SETTINGS_FILE} is stale: run python -m cryptolake.k8s settings", file=sys.stderr)
            return 1
        chartgen.write()
        print(f"wrote {chartgen.SETTINGS_FILE}")
        return 0

    if args.command == "chart-docs":
        return _chart_docs(args.check)

    started = time.monotonic()
    try:
        installed = tools.install()
    except tools.ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name, path in installed.items():
        print(f"{name:22} {path}")
    print(f"ready in {time.monotonic() - started:.1f}s")
    return 0


def _chart_docs(check: bool) -> int:
    try:
        if check:
            stale = chartdocs.stale()
            for chart in stale:
                print(f"charts/{chart}/README.md is stale: run {chartdocs.COMMAND}", file=sys.stderr)
            return 1 if stale else 0
        written = chartdocs.generate()
    except tools.ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
