"""The shared corpus: no auto-allow of anything dangerous, no deny of anything benign."""

from __future__ import annotations

from pathlib import Path

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
