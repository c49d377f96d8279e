"""Reading the log back: every entry in order, one tool call's story, search and export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runestone.audit.log import list_segments

CSV_FIELDS = ("seq", "time", "kind", "request_id", "tool", "decision", "rules", "reason",
              "action_hash", "policy_hash", "session", "agent", "summary", "hash")


def read_entries(directory: Path) -> Iterator[dict[str, Any]]:
    """Every complete entry, oldest first (a torn final line is skipped)."""
    for _, path in list_segments(directory):
        with path.open("rb") as handle:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    break
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue


@dataclass
class Query:
    """Search filters; all given must hold."""

    since: str = ""
    until: str = ""
    tool: str = ""
    decision: str = ""
    rule: str = ""
    kind: str = ""
    text: str = ""
    request_id: str = ""

    def matches(self, entry: dict[str, Any]) -> bool:
        time = str(entry.get("time", ""))
        if self.since and time < self.since:
            return False
        if self.until and time > self.until:
            return False
        if self.tool and entry.get("tool") != self.tool:
            return False
        if self.decision and entry.get("decision") != self.decision:
            return False
        if self.rule and self.rule not in (entry.get("rules") or []):
            return False
        if self.kind and entry.get("kind") != self.kind:
            return False
        if self.request_id and entry.get("request_id") != self.request_id:
            return False
        return not (self.text and self.text.lower() not in json.dumps(entry).lower())


def search(directory: Path, query: Query) -> Iterator[dict[str, Any]]:
    return (entry for entry in read_entries(directory) if query.matches(entry))


def export(entries: Iterator[dict[str, Any]], fmt: str) -> Iterator[str]:
    if fmt == "jsonl":
        for entry in entries:
            yield json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    yield buffer.getvalue()
    for entry in entries:
        buffer.seek(0)
        buffer.truncate()
        row = dict(entry)
        row["rules"] = " ".join(entry.get("rules") or [])
        writer.writerow(row)
        yield buffer.getvalue()


def one_line(entry: dict[str, Any]) -> str:
    """A line for people: `seq time kind decision tool summary`."""
    parts = [f"{entry.get('seq', '?'):>6}", str(entry.get("time", ""))[:26],
             f"{entry.get('kind', ''):10}"]
    if entry.get("decision"):
        parts.append(f"{entry['decision']:5}")
    if entry.get("tool"):
        parts.append(str(entry["tool"]))
    if entry.get("summary"):
        parts.append(str(entry["summary"])[:100])
    elif entry.get("reason"):
        parts.append(str(entry["reason"])[:100])
    if entry.get("request_id"):
        parts.append(f"[{entry['request_id']}]")
    return "  ".join(parts)
