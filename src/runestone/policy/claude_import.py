"""Import Claude Code's `permissions.allow / ask / deny` lists as Runestone rules.

Claude Code's rule syntax is `Tool` or `Tool(specifier)`: `Bash(npm run test:*)`,
`Read(~/.ssh/**)`, `Edit(/src/**)`, `WebFetch(domain:example.com)`, `mcp__github`,
`mcp__github__create_issue`. Each becomes one rule with the same decision, so a team keeps
the lists it already reviewed, now with Runestone's semantics on top: shell strings are
analysed part by part (so `Bash(git status:*)` no longer allows `git status; rm -rf ~`) and
deny or ask in the built-in packs still wins over an imported allow.

Path anchors follow Claude Code: `//abs` is absolute, `~/p` is under home, `/p` is relative
to the project (the directory holding `.claude/`), and `p` or `./p` relative to the project.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from runestone.policy.rules import compile_rule

_RULE = re.compile(r"^(?P<tool>[A-Za-z0-9_.:*-]+)(?:\((?P<spec>.*)\))?$", re.DOTALL)
_READ_TOOLS = ("Read", "Grep", "Glob", "LS", "NotebookRead")
_EDIT_TOOLS = ("Edit", "MultiEdit", "Write", "NotebookEdit")
_DECISIONS = ("deny", "ask", "allow")


@dataclass(slots=True)
class ImportResult:
    """The rules made, what could not be imported (and why), and the policy as TOML."""

    rules: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    toml: str = ""


def import_claude_settings(settings: dict[str, Any], *, settings_path: str = "") -> ImportResult:
    """Turn a parsed `settings.json` into rules. Entries that cannot be read become warnings."""
    result = ImportResult()
    permissions = settings.get("permissions", {})
    if not isinstance(permissions, dict):
        result.warnings.append("'permissions' is not an object; nothing imported")
        permissions = {}
    used: set[str] = set()
    for decision in _DECISIONS:
        entries = permissions.get(decision, [])
        if not isinstance(entries, list):
            result.warnings.append(f"permissions.{decision} is not a list; skipped")
            continue
        for entry in entries:
            if not isinstance(entry, str):
                result.warnings.append(f"permissions.{decision}: {entry!r} is not a string")
                continue
            try:
                rule = rule_from_permission(entry, decision)
            except ValueError as exc:
                result.warnings.append(f"permissions.{decision}: {entry!r}: {exc}")
                continue
            rule["id"] = _unique_id(rule["id"], used)
            try:
                compile_rule(rule, "claude-import")
            except Exception as exc:
                result.warnings.append(f"permissions.{decision}: {entry!r}: {exc}")
                continue
            result.rules.append(rule)
    result.toml = render_policy(result.rules, settings_path, result.warnings)
    return result


def rule_from_permission(entry: str, decision: str) -> dict[str, Any]:
    """One Claude Code permission string as a Runestone rule table (without a final id)."""
    match = _RULE.match(entry.strip())
    if match is None:
        raise ValueError("not of the form Tool or Tool(specifier)")
    tool, spec = match.group("tool"), match.group("spec")
    reason = f"Claude Code settings: {decision} {entry.strip()}"
    rule: dict[str, Any] = {"id": "claude." + _slug(entry), "decision": decision,
                            "reason": reason}
    if spec is not None and spec.strip() in ("", "*"):
        spec = None
    if tool.startswith("mcp__"):
        server, _, name = tool[len("mcp__"):].partition("__")
        if not server:
            raise ValueError("an MCP rule needs a server name")
        rule["mcp_server"] = [server]
        if name:
            rule["mcp_tool"] = [name]
        return rule
    if tool == "Bash":
        if spec is None:
            rule["family"] = ["shell"]
        else:
            rule["command"] = [spec.strip()]
        return rule
    if tool in ("Read", "Edit", "Write", "MultiEdit", "NotebookEdit"):
        reading = tool == "Read"
        if spec is None:
            rule["tool"] = list(_READ_TOOLS if reading else _EDIT_TOOLS)
            return rule
        rule["path"] = [claude_path(spec.strip())]
        if decision == "allow":
            # An allowance covers the file tools only, never shell commands naming the path.
            rule["tool"] = list(_READ_TOOLS if reading else _EDIT_TOOLS)
        rule["access"] = (["read", "list", "arg"] if reading else ["write", "edit", "delete"])
        if decision == "allow":
            rule["access"] = ["read", "list"] if reading else ["write", "edit"]
        return rule
    if tool == "WebFetch":
        if spec is None:
            rule["family"] = ["web_fetch"]
        elif spec.startswith("domain:"):
            rule["domain"] = [spec[len("domain:"):].strip()]
            if decision == "allow":
                rule["family"] = ["web_fetch"]
        else:
            raise ValueError("WebFetch rules take 'domain:NAME'")
        return rule
    if spec is not None:
        raise ValueError(f"specifiers for {tool} are not understood")
    rule["tool"] = [tool]
    return rule


def claude_path(pattern: str) -> str:
    """A Claude Code path pattern with Runestone's anchors."""
    if pattern.startswith("//"):
        return pattern[1:]
    if pattern.startswith("~/") or pattern == "~":
        return pattern
    if pattern.startswith("/"):
        return "{project}" + pattern
    if pattern.startswith("./"):
        return "{project}/" + pattern[2:]
    return "{project}/" + pattern if "/" in pattern else pattern


def render_policy(rules: list[dict[str, Any]], settings_path: str, warnings: list[str]) -> str:
    """The imported rules as a policy file that includes the built-in packs."""
    lines = [
        f"# Imported from Claude Code settings{': ' + settings_path if settings_path else ''}.",
        "# The built-in packs stay included: their deny and ask rules still win over the",
        "# allowances imported here. Review, then save as your policy.",
        "",
        "[policy]",
        'name = "claude-import"',
        'default = "ask"',
        'include = ["default"]',
    ]
    for warning in warnings:
        lines.insert(3, f"# not imported: {warning}")
    for rule in rules:
        lines.append("")
        lines.append("[[rule]]")
        for key in ("id", "decision", "reason"):
            lines.append(f"{key} = {_toml_value(rule[key])}")
        for key, value in rule.items():
            if key not in ("id", "decision", "reason"):
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    # JSON strings and arrays of strings are valid TOML basic strings and arrays.
    return json.dumps(value, ensure_ascii=False)


def _slug(entry: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", entry).strip("-").lower()
    return slug[:48] or "rule"


def _unique_id(base: str, used: set[str]) -> str:
    candidate, n = base, 2
    while candidate in used:
        candidate = f"{base}-{n}"
        n += 1
    used.add(candidate)
    return candidate
