"""A policy's own tests: each rule's `match` / `not_match` examples and the `[[test]]` cases.

Examples run in a fixed, documented context so that they mean the same on every machine:
the project (and working directory) is `/home/user/project` and the home is `/home/user`.
A string example is read according to what the rule looks at: a shell command for command
rules, a path for path rules (read with the tool its `access` implies), a URL for URL rules,
and a tool name for MCP and tool rules; an example with a space in it is always a shell
command (`cat ~/.ssh/id_rsa` for a path rule). A table example gives `tool`, `input` (and `cwd`).
A Windows `cwd` (`C:\\Users\\user\\project`) is the project itself, and the home the profile
it lies in, so Windows rules are tested in a Windows place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runestone.actions import Action, ActionError
from runestone.actions.winpaths import is_windows_place
from runestone.facts import derive_facts
from runestone.policy.engine import CompiledPolicy, evaluate
from runestone.policy.errors import PolicyError, PolicyTestFailure
from runestone.policy.model import EvalContext, Rule
from runestone.policy.rules import COMMAND_FIELDS, PATH_FIELDS, URL_FIELDS

STRICTNESS = {"allow": 0, "sandbox": 1, "ask": 2, "deny": 3}
EXAMPLE_PROJECT = "/home/user/project"
EXAMPLE_HOME = "/home/user"


@dataclass(frozen=True)
class TestResult:
    """One example or case: what was expected, what happened, and where it is written."""

    name: str
    passed: bool
    detail: str
    location: str


def _project_for(cwd: Any) -> str:
    """The example project: the cwd itself when it is a Windows place."""
    return cwd if isinstance(cwd, str) and is_windows_place(cwd) else EXAMPLE_PROJECT


def example_action(rule: Rule, example: Any) -> Action:
    """Build the action a rule example stands for."""
    if isinstance(example, dict):
        cwd = example.get("cwd", EXAMPLE_PROJECT)
        if "command" in example:
            return Action("Bash", {"command": example["command"]}, cwd,
                          project_dir=_project_for(cwd))
        tool = example.get("tool")
        if not isinstance(tool, str):
            raise ActionError("a table example needs 'command' or 'tool'")
        return Action(tool, dict(example.get("input", {})), cwd, project_dir=_project_for(cwd))
    if not isinstance(example, str):
        raise ActionError(f"an example must be a string or a table, got {type(example).__name__}")
    spec = rule.spec
    # A path or URL rule's example with a space in it is a shell command that names one.
    if any(key in spec for key in COMMAND_FIELDS) or " " in example.strip():
        return Action("Bash", {"command": example}, EXAMPLE_PROJECT, project_dir=EXAMPLE_PROJECT)
    if any(key in spec for key in URL_FIELDS):
        return Action("WebFetch", {"url": example, "prompt": "example"}, EXAMPLE_PROJECT,
                      project_dir=EXAMPLE_PROJECT)
    if any(key in spec for key in PATH_FIELDS):
        access = spec.get("access", "read")
        access = access if isinstance(access, str) else access[0]
        tool = {"write": "Write", "edit": "Edit"}.get(access, "Read")
        payload: dict[str, Any] = {"file_path": example}
        if tool == "Write":
            payload["content"] = ""
        elif tool == "Edit":
            payload.update(old_string="a", new_string="b")
        return Action(tool, payload, EXAMPLE_PROJECT, project_dir=EXAMPLE_PROJECT)
    # MCP and tool rules: the example is a tool name.
    return Action(example, {}, EXAMPLE_PROJECT, project_dir=EXAMPLE_PROJECT)


def _rule_fires(rule: Rule, action: Action) -> bool:
    facts = derive_facts(action, home=EXAMPLE_HOME)
    ctx = EvalContext(tainted=rule.tainted_only)
    return any(
        part.kind in rule.kinds and rule.match(part, facts, ctx) is True for part in facts.parts
    )


def case_action(case: dict[str, Any]) -> Action:
    cwd = case.get("cwd", EXAMPLE_PROJECT)
    if "command" in case:
        tool_input: dict[str, Any] = {"command": case["command"]}
        tool = case.get("tool", "Bash")
    else:
        tool = case.get("tool")
        tool_input = case.get("input", {})
        if not isinstance(tool, str):
            raise ActionError("a [[test]] needs 'command' or 'tool'")
    return Action(tool, dict(tool_input), cwd, agent=case.get("agent", ""),
                  session=case.get("session", ""), project_dir=_project_for(cwd))


def run_policy_tests(policy: CompiledPolicy) -> list[TestResult]:
    """Run every example and case; return one result each (nothing raised for failures)."""
    results: list[TestResult] = []
    active = {rule.id for rule in policy.rules}
    for rule, table, source, line in policy.examples:
        if rule.id not in active:
            continue
        where = f"{source}:{line}" if line else source
        for expected, key in ((True, "match"), (False, "not_match")):
            for example in table.get(key, []) or []:
                name = f"{rule.id} {key} {example!r}"
                try:
                    fired = _rule_fires(rule, example_action(rule, example))
                except ActionError as exc:
                    results.append(TestResult(name, False, f"bad example: {exc}", where))
                    continue
                ok = fired == expected
                detail = "ok" if ok else ("rule did not match" if expected else "rule matched")
                results.append(TestResult(name, ok, detail, where))
    for case, source, line in policy.cases:
        where = f"{source}:{line}" if line else source
        name = case.get("name") or str(case.get("command") or case.get("tool"))
        try:
            action = case_action(case)
        except ActionError as exc:
            results.append(TestResult(name, False, f"bad test: {exc}", where))
            continue
        ctx = EvalContext(tainted=bool(case.get("tainted", False)))
        decision = evaluate(policy, derive_facts(action, home=EXAMPLE_HOME), ctx)
        expect = case["expect"]
        ok = decision.decision == expect
        wanted_rule = case.get("rule")
        if ok and wanted_rule and wanted_rule not in decision.rules:
            ok = False
        if not ok and source.startswith("pack:") and \
                STRICTNESS[decision.decision] > STRICTNESS[expect]:
            # A policy may be stricter than a pack it includes (its own deny over the pack's
            # ask); a pack's case fails only when the policy is looser than the pack says.
            ok = True
        if not ok and source.startswith("pack:") and expect == "ask" and not wanted_rule \
                and decision.decision == "sandbox" and policy.default == "sandbox":
            # Packs are written for a default of ask: what their case leaves to the default
            # is contained under a default of sandbox, which is the point of that default.
            ok = True
        detail = (
            "ok" if ok else
            f"expected {expect}{' by ' + wanted_rule if wanted_rule else ''}, got "
            f"{decision.decision} ({', '.join(decision.rules) or 'no rule'}): {decision.reason}"
        )
        results.append(TestResult(f"test {name!r}", ok, detail, where))
    return results


def require_passing(policy: CompiledPolicy) -> None:
    """Refuse the policy (fail closed) if any of its own tests fails."""
    for case, source, line in policy.cases:
        if case.get("expect") not in ("allow", "deny", "ask", "sandbox"):
            raise PolicyError(f"[[test]] expect must be allow, deny, ask or sandbox; got "
                              f"{case.get('expect')!r}", source=source, line=line)
    failures = [
        f"{r.location}: {r.name}: {r.detail}"
        for r in run_policy_tests(policy)
        if not r.passed
    ]
    if failures:
        raise PolicyTestFailure(failures, source=policy.source)
