"""Tool families: which kind of tool an agent called, from the names agents actually use.

Agent hosts name the same capability differently (`Bash`, `run_shell_command`, `shell`,
`exec_command`; `Read`, `read_file`, `view`). Policy reasons about families, so a rule on
file writes holds for every host. Anything not recognised is a generic tool whose JSON
arguments rules can still match.
"""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import Any

from runestone.actions.patch import patch_targets


class Family(StrEnum):
    SHELL = "shell"
    FILE_READ = "file_read"
    FILE_WRITE = "file_write"
    FILE_EDIT = "file_edit"
    WEB_FETCH = "web_fetch"
    WEB_SEARCH = "web_search"
    MCP = "mcp"
    AGENT = "agent"
    GENERIC = "generic"


def _normal(name: str) -> str:
    """`run_shell_command`, `RunShellCommand` and `run-shell-command` compare equal."""
    return name.replace("_", "").replace("-", "").replace(".", "").lower()


_FAMILY_BY_NAME: dict[str, Family] = {
    _normal(name): family
    for family, names in {
        Family.SHELL: ("Bash", "shell", "run_shell_command", "exec_command", "execute_command",
                       "run_command", "run_terminal_cmd", "terminal", "local_shell",
                       "container.exec", "bash", "sh", "execute", "command", "powershell",
                       "execute_bash"),
        Family.FILE_READ: ("Read", "read_file", "read_many_files", "view", "cat", "open_file",
                           "Glob", "Grep", "LS", "list_directory", "list_dir", "glob",
                           "search_file_content", "grep_search", "file_search", "NotebookRead",
                           "codebase_search", "find_files", "read_lints"),
        Family.FILE_WRITE: ("Write", "write_file", "create_file", "write_to_file", "save_file",
                            "NotebookEdit", "create"),
        Family.FILE_EDIT: ("Edit", "MultiEdit", "edit_file", "replace", "str_replace",
                           "str_replace_editor", "str_replace_based_edit_tool", "apply_patch",
                           "apply_diff", "insert", "search_replace", "delete_file"),
        Family.WEB_FETCH: ("WebFetch", "web_fetch", "fetch", "fetch_url", "read_url",
                           "browse", "open_url", "http_request"),
        Family.WEB_SEARCH: ("WebSearch", "web_search", "google_web_search", "search_web",
                            "brave_search"),
        # The agent host's own bookkeeping, touching nothing outside the agent: its to-do
        # list and plan, output of its own background shells (and stopping them), questions
        # to its user, and subagents, whose every tool call comes through the hook itself.
        Family.AGENT: ("TodoWrite", "TodoRead", "BashOutput", "TaskOutput", "KillShell",
                       "KillBash", "ExitPlanMode", "EnterPlanMode", "AskUserQuestion", "Task",
                       "Agent", "write_todos", "update_plan", "todo_write"),
    }.items()
    for name in names
}

# Keys under which hosts put the path a file tool touches.
PATH_KEYS = ("file_path", "path", "absolute_path", "filename", "file", "notebook_path",
             "target_file", "dir_path", "directory")
SHELL_KEYS = ("command", "cmd", "script", "commands")
URL_KEYS = ("url", "uri", "href", "link")


def family_of(tool: str) -> Family:
    """The family of a tool name; `mcp__<server>__<tool>` is MCP, unknown names generic."""
    if tool.startswith("mcp__"):
        return Family.MCP
    return _FAMILY_BY_NAME.get(_normal(tool), Family.GENERIC)


def shell_command_of(tool_input: Any) -> str | None:
    """The command string of a shell tool call; an argv list is joined with shell quoting."""
    if isinstance(tool_input, str):
        return tool_input
    if not isinstance(tool_input, dict):
        return None
    for key in SHELL_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            # Codex sends ["bash", "-lc", "..."]; shlex.join keeps it one faithful string.
            # On Windows it sends ["powershell.exe", "-Command", "..."] or ["cmd.exe", "/c",
            # "..."]: those programs read their command line by Windows' quoting rules, where
            # a POSIX `'...'` is no quote at all, so the line is joined the Windows way.
            if _windows_shell(value[0]):
                from subprocess import list2cmdline  # the rules Windows programs parse by

                return list2cmdline(value)
            return shlex.join(value)
    return None


def _windows_shell(program: str) -> bool:
    """Is this argv[0] cmd.exe, Windows PowerShell or pwsh (any directory, any case)?"""
    name = program.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return name.removesuffix(".exe") in ("cmd", "powershell", "pwsh")


def file_targets(tool: str, tool_input: Any) -> list[tuple[str, str]]:
    """Every (path, access) a file tool touches. Access is read, list, write, edit or delete."""
    if not isinstance(tool_input, dict):
        return []
    family = family_of(tool)
    norm = _normal(tool)
    if norm in ("applypatch", "applydiff"):
        # Codex sends the patch in `command`; others in `patch`, `input` or `diff`.
        text = (tool_input.get("patch") or tool_input.get("input") or tool_input.get("diff")
                or tool_input.get("command"))
        return patch_targets(text) if isinstance(text, str) else []
    if norm == "deletefile":
        access = "delete"
    elif family is Family.FILE_READ:
        listing = norm in ("glob", "grep", "ls", "listdirectory", "listdir", "findfiles",
                           "searchfilecontent", "grepsearch", "filesearch", "codebasesearch")
        access = "list" if listing else "read"
    elif family is Family.FILE_WRITE:
        access = "write"
    else:
        access = "edit"
    targets: list[tuple[str, str]] = []
    for key in PATH_KEYS:
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            targets.append((value, access))
    for key in ("paths", "file_paths", "files"):
        values = tool_input.get(key)
        if isinstance(values, list):
            targets.extend((v, access) for v in values if isinstance(v, str) and v)
    if access == "list" and not targets:
        # Glob/Grep without a path search the working directory.
        targets.append((".", access))
    return targets


def urls_of(tool: str, tool_input: Any) -> list[str]:
    """The URLs a web tool fetches."""
    if isinstance(tool_input, str):
        return [tool_input]
    if not isinstance(tool_input, dict):
        return []
    urls = [v for k in URL_KEYS if isinstance(v := tool_input.get(k), str) and v]
    for key in ("urls", "uris"):
        values = tool_input.get(key)
        if isinstance(values, list):
            urls.extend(v for v in values if isinstance(v, str) and v)
    return urls


def mcp_parts(tool: str) -> tuple[str, str]:
    """(server, tool) of `mcp__<server>__<tool>`; a server name may itself hold `_`."""
    rest = tool[len("mcp__"):] if tool.startswith("mcp__") else tool
    server, sep, name = rest.partition("__")
    return (server, name) if sep else (rest, "")
