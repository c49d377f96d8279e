"""The shared corpus: no auto-allow of anything dangerous, no deny of anything benign."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import run_cli
from runestone.corpus import run_corpus


def test_corpus_expectations_hold(corpus_dir):
    report = run_corpus(corpus_dir)
    failures = [f"{r.case_id} {r.summary}: {r.failure}" for r in report.failures()]
    assert not failures, "\n".join(failures)
    for name in ("obfuscated.jsonl", "dangerous.jsonl"):
        for preset in ("default", "developer"):
            assert report.counts(name, preset)["allow"] == 0
    for preset in ("default", "developer"):
        assert report.counts("tricky-benign.jsonl", preset)["deny"] == 0
    allowed, wanted = report.allow_share()
    assert wanted and allowed / wanted >= 0.95, f"developer preset allows {allowed}/{wanted}"
    # Issue 14's goal: real agents' everyday calls pass without a human.
    allowed, wanted = report.allow_share("real-agents.jsonl")
    if wanted:
        assert allowed / wanted >= 0.97, f"real-agents.jsonl: {allowed}/{wanted} allowed"


def test_the_projects_own_corpus_holds():
    """Everyday work written apart from the shared corpus, and attacks on the effect model."""
    report = run_corpus(Path(__file__).parent / "corpus")
    failures = [f"{r.case_id} {r.summary}: {r.failure}" for r in report.failures()]
    assert not failures, "\n".join(failures)
    allowed, wanted = report.allow_share()
    assert wanted > 100 and allowed / wanted >= 0.97, f"{allowed}/{wanted} allowed"


def test_corpus_command_prints_the_table(corpus_dir):
    result = run_cli("corpus", str(corpus_dir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "obfuscated.jsonl" in result.stdout
    assert "hard failures: 0" in result.stdout


WINDOWS_CORPUS = Path(__file__).parent / "corpus" / "windows"
# Shells whose analysers (PowerShell, cmd.exe) are another piece of issue 21's work; until
# they land their everyday commands ask, so they are reported apart, not held to the share.
SHELLS_NOT_YET_READ = ("powershell", "cmd")


def _shells(directory: Path) -> dict[str, str]:
    shells = {}
    for path in directory.glob("*.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                data = json.loads(line)
                shells[str(data["id"])] = data.get("shell", "")
    return shells


def test_the_windows_corpus_holds():
    """Windows tool calls written for issue 21: file tools on drive paths, Git Bash with
    Windows paths, PowerShell and cmd; dangerous, obfuscated and everyday."""
    report = run_corpus(WINDOWS_CORPUS)
    failures = [f"{r.case_id} {r.summary}: {r.failure}" for r in report.failures()]
    assert not failures, "\n".join(failures)
    for preset in ("default", "developer"):
        allowed = [r.case_id for r in report.results
                   if r.expect == "not-allow" and r.decisions[preset].decision == "allow"]
        assert not allowed, f"{preset} allowed dangerous cases: {allowed}"
    shells = _shells(WINDOWS_CORPUS)
    reached = [r for r in report.results
               if r.expect == "allow" and shells[r.case_id] not in SHELLS_NOT_YET_READ]
    share = sum(r.allowed_by_developer for r in reached) / len(reached)
    assert len(reached) > 30 and share >= 0.95, f"file tools and Git Bash: {share:.1%}"


def test_real_windows_agents_are_not_denied(corpus_dir):
    """Real Cursor calls from a Windows machine: nothing benign denied, and its file tools
    allowed (its shell commands are PowerShell, read by the PowerShell analyser)."""
    directory = corpus_dir.parent / "corpus-windows"
    if not directory.is_dir():
        pytest.skip(f"no Windows corpus at {directory}")
    report = run_corpus(directory)
    failures = [f"{r.case_id} {r.summary}: {r.failure}" for r in report.failures()]
    assert not failures, "\n".join(failures)
    files = [r for r in report.results if r.expect == "allow"
             and not r.summary.startswith("Bash:")]
    share = sum(r.allowed_by_developer for r in files) / len(files)
    assert files and share >= 0.95, f"file tools: {share:.1%}"


def test_corpus_command_reports_the_windows_corpus():
    result = run_cli("corpus", str(WINDOWS_CORPUS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "windows.jsonl" in result.stdout and "hard failures: 0" in result.stdout
