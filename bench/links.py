"""Call links (pre hook -> post hook) at 10k and 100k links kept, beside the old layout.

For each size, the store is filled with that many links (spread over the last day, as a
busy day of hooks leaves them), then, in the same run:
  - remember: one more link (what every PreToolUse pays);
  - recall: a link written a moment ago (what a PostToolUse pays);
  - upkeep: forgetting what is older than a day, which the segment store does once an hour
    and the old per-call-file layout did on about 1 remember in 64;
beside the baseline: the per-call-file layout this replaced (one file per call, pruned by
scanning the directory), on the same disk.

Usage: python bench/links.py [--sizes 10000,100000] [--samples 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from runestone.digest import sha256
from runestone.integrations.links import HOUR, KEEP_SECONDS, CallLinks


class PerCallFiles:
    """The layout before: a file per call id, pruned by a scan of the whole directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _file(self, call_id: str) -> Path:
        return self.directory / sha256(call_id.encode()).hexdigest()[:40]

    def remember(self, call_id: str, request_id: str) -> None:
        self._file(call_id).write_text(request_id, encoding="utf-8")

    def recall(self, call_id: str) -> str:
        return self._file(call_id).read_text(encoding="utf-8").strip()

    def prune(self) -> None:
        cutoff = time.time() - KEEP_SECONDS
        for path in self.directory.glob("*"):
            if path.stat().st_mtime < cutoff:
                path.unlink()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def timed(action, samples: int) -> float:  # type: ignore[no-untyped-def]
    values = []
    for n in range(samples):
        start = time.perf_counter_ns()
        action(n)
        values.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(values)


def measure(store, samples: int, label: str, prune_runs: int,  # type: ignore[no-untyped-def]
            prunes_per_remember: float) -> None:
    remember = timed(lambda n: store.remember(f"new-{n}", f"req_{n:024x}"), samples)
    recall = timed(lambda n: store.recall(f"new-{n}"), samples)
    prune_ms = timed(lambda n: store.prune(), prune_runs) / 1000
    amortised = remember + prune_ms * 1000 * prunes_per_remember
    print(f"  {label:<28} remember {remember:7.1f} µs   recall {recall:6.1f} µs"
          f"   upkeep {prune_ms:8.2f} ms   remember with upkeep {amortised:8.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    for size in (int(part) for part in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            now = time.time()
            clock = Clock(now - KEEP_SECONDS + HOUR)
            segments = CallLinks(root / "segments", clock)
            old = PerCallFiles(root / "files")
            for n in range(size):  # a day of hooks, oldest first
                clock.now = now - KEEP_SECONDS + HOUR + n * (KEEP_SECONDS - HOUR) / size
                segments.remember(f"call-{n}", f"req_{n:024x}")
                old.remember(f"call-{n}", f"req_{n:024x}")
            clock.now = now
            print(f"{size:,} links kept")
            # The old layout pruned on about 1 remember in 64; segments once an hour.
            measure(old, args.samples, "baseline: a file per call", 3, 4 / 256)
            measure(segments, args.samples, "hourly append-only segments", 20,
                    24 / size)
            files = len(os.listdir(root / "segments"))
            print(f"  files in the directory: {len(os.listdir(root / 'files')):,} (baseline)"
                  f" vs {files} (segments)")


if __name__ == "__main__":
    main()
