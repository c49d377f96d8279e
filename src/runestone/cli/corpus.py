"""`runestone corpus DIR`: the corpus table; exit 1 on any hard failure."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runestone.corpus import format_report, run_corpus


def run_corpus_command(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"not a directory: {directory}", file=sys.stderr)
        return 2
    report = run_corpus(directory, home=args.home_dir)
    print(format_report(report, show_all=args.show))
    return 1 if report.failures() else 0


