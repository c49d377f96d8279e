"""Run a corpus of tool calls against the presets and check what each case expects.

Each JSON Lines case is a `PreToolUse`-shaped action with `id` and `expect`:
`not-allow` (must be denied or asked), `allow` (the developer preset should allow it) or
`not-deny` (benign: allow or ask, never deny). The runner reports counts per file and
preset, the hard failures, and the share of `allow` cases the developer preset allows.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from runestone.actions import ActionError, action_from_hook_json
from runestone.gatekeeper import Gatekeeper
from runestone.policy import Decision, load_preset

PRESETS = ("default", "developer")


@dataclass
class CaseResult:
    file: str
    case_id: str
    expect: str
    summary: str
    decisions: dict[str, Decision]
    failure: str = ""

    @property
    def allowed_by_developer(self) -> bool:
        return self.decisions["developer"].decision == "allow"


@dataclass
class CorpusReport:
    results: list[CaseResult] = field(default_factory=list)

    def failures(self) -> list[CaseResult]:
        return [r for r in self.results if r.failure]

    def counts(self, file: str, preset: str) -> Counter[str]:
        return Counter(r.decisions[preset].decision for r in self.results if r.file == file)

    def files(self) -> list[str]:
        return sorted({r.file for r in self.results})

    def allow_share(self, file: str | None = None) -> tuple[int, int]:
        """`allow` cases the developer preset allows, and how many there are (in one file,
        or in all)."""
        wanted = [r for r in self.results if r.expect == "allow"
                  and (file is None or r.file == file)]
        return sum(r.allowed_by_developer for r in wanted), len(wanted)


def infer_home(cwd: str) -> str | None:
    """The corpus's own user home, from a cwd like /home/dev/app."""
    match = re.match(r"^(/home/[^/]+|/Users/[^/]+|/root)(/|$)", cwd)
    return match.group(1) if match else None


def _summary(data: dict) -> str:
    tool_input = data.get("tool_input") or {}
    detail = (tool_input.get("command") or tool_input.get("file_path") or tool_input.get("url")
              or json.dumps(tool_input, ensure_ascii=False))
    return f"{data.get('tool_name')}: {detail}"


def _judge(expect: str, decisions: dict[str, Decision]) -> str:
    for preset, decision in decisions.items():
        if expect == "not-allow" and decision.decision == "allow":
            return f"allowed under {preset} ({', '.join(decision.rules)})"
        if expect in ("not-deny", "allow") and decision.decision == "deny":
            return f"denied under {preset}: {decision.reason}"
    return ""


def run_corpus(directory: str | Path, *, home: str | None = None) -> CorpusReport:
    gatekeepers = {name: Gatekeeper(load_preset(name)) for name in PRESETS}
    report = CorpusReport()
    for path in sorted(Path(directory).glob("*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            data = json.loads(line)
            case_home = home or infer_home(str(data.get("cwd", "")))
            decisions = {}
            for name, gatekeeper in gatekeepers.items():
                gatekeeper.home = case_home
                try:
                    action = action_from_hook_json(data)
                except ActionError as exc:
                    raise ValueError(f"{path.name}:{number}: {exc}") from exc
                decisions[name] = gatekeeper.check(action)
            expect = str(data.get("expect", ""))
            report.results.append(CaseResult(
                file=path.name,
                case_id=str(data.get("id", f"{path.name}:{number}")),
                expect=expect,
                summary=_summary(data),
                decisions=decisions,
                failure=_judge(expect, decisions),
            ))
    return report


def format_report(report: CorpusReport, *, show_all: bool = False) -> str:
    lines = [
        f"{'file':24} {'cases':>5}   {'default: allow ask deny':>24}   "
        f"{'developer: allow ask deny':>26}   failures",
    ]
    for file in report.files():
        total = sum(1 for r in report.results if r.file == file)
        d, v = report.counts(file, "default"), report.counts(file, "developer")
        failed = sum(1 for r in report.results if r.file == file and r.failure)
        lines.append(
            f"{file:24} {total:5}   {d['allow']:>14} {d['ask']:>4} {d['deny']:>4}   "
            f"{v['allow']:>16} {v['ask']:>4} {v['deny']:>4}   {failed:>8}"
        )
    shares = [(file, *report.allow_share(file)) for file in report.files()]
    shares = [share for share in shares if share[2]]
    if shares:
        lines.append("\n`allow` cases the developer preset allows:")
        for file, allowed, wanted in shares:
            lines.append(f"  {file:24} {allowed}/{wanted} ({100.0 * allowed / wanted:.1f}%)")
    failures = report.failures()
    lines.append(f"hard failures: {len(failures)}")
    for result in failures:
        lines.append(f"  FAIL {result.case_id} ({result.expect}) {result.summary}\n"
                     f"       {result.failure}")
    misses = [r for r in report.results if r.expect == "allow" and not r.allowed_by_developer]
    for result in misses:
        decision = result.decisions["developer"]
        lines.append(f"  not allowed by developer: {result.case_id} {result.summary}\n"
                     f"       {decision.decision}: {decision.reason}")
    if show_all:
        for result in report.results:
            marks = " ".join(f"{p}={d.decision}" for p, d in result.decisions.items())
            lines.append(f"  {result.case_id:10} {result.expect:9} {marks:28} {result.summary}")
    return "\n".join(lines)
