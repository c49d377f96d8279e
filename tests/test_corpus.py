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


def test_the_windows_corpus_holds():
    """Windows tool calls written for issue 21: file tools on drive paths, Git Bash with
    Windows paths, PowerShell and cmd; dangerous, obfuscated and everyday. Each case names
    its shell, so a share is also held per shell."""
    report = run_corpus(WINDOWS_CORPUS)
    failures = [f"{r.case_id} {r.summary}: {r.failure}" for r in report.failures()]
    assert not failures, "\n".join(failures)
    for preset in ("default", "developer"):
        allowed = [r.case_id for r in report.results
                   if r.expect == "not-allow" and r.decisions[preset].decision == "allow"]
        assert not allowed, f"{preset} allowed dangerous cases: {allowed}"
    allowed, wanted = report.allow_share()
    assert wanted > 40 and allowed / wanted >= 0.95, f"developer allows {allowed}/{wanted}"
    shells = {}
    for line in (WINDOWS_CORPUS / "windows.jsonl").read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        shells[data["id"]] = data.get("shell") or "file tools"
    for shell in set(shells.values()):
        cases = [r for r in report.results if r.expect == "allow" and shells[r.case_id] == shell]
        share = sum(r.allowed_by_developer for r in cases) / len(cases)
        assert share >= 0.95, f"{shell}: developer allows {share:.1%}"


def test_real_windows_agents_are_not_denied(corpus_dir):
    """Real Cursor calls from a Windows machine: nothing benign denied, nothing dangerous
    allowed, and 95% of the everyday calls allowed (file tools and PowerShell)."""
    directory = corpus_dir.parent / "corpus-windows"
    if not directory.is_dir():
        pytest.skip(f"no Windows corpus at {directory}")
    report = run_corpus(directory)
    failures = [f"{r.case_id} {r.summary}: {r.failure}" for r in report.failures()]
    assert not failures, "\n".join(failures)
    allowed, wanted = report.allow_share()
    assert wanted and allowed / wanted >= 0.95, f"developer allows {allowed}/{wanted}"


def test_corpus_command_reports_the_windows_corpus():
    result = run_cli("corpus", str(WINDOWS_CORPUS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "windows.jsonl" in result.stdout and "hard failures: 0" in result.stdout
