"""The paths and URLs in an MCP tool call's arguments, with the access the tool makes.

An MCP server's `write_file` to `~/.ssh/authorized_keys` is the same act as the host's own
`Write` to it, so policy must see the same path fact. The access comes from what the tool
says it does (its name's verb: `write_file`, `read_text_file`, `move_file`, `delete_issue`);
a tool whose verb says nothing is taken to both read and write what it names, so a rule on
either catches it (fail closed).
"""

from __future__ import annotations

import re
from typing import Any

from runestone.actions.tools import PATH_KEYS, URL_KEYS
from runestone.actions.urls import looks_like_url

_VERBS: dict[str, tuple[str, ...]] = {
    "write": ("write", "create", "save", "put", "upload", "append", "mkdir", "make", "new",
              "add", "set", "store", "touch", "copy", "cp"),
    "edit": ("edit", "update", "replace", "patch", "modify", "insert", "change", "apply"),
    "delete": ("delete", "remove", "rm", "unlink", "trash", "rmdir", "destroy", "drop",
               "purge", "erase"),
    "move": ("move", "mv", "rename"),
    "read": ("read", "get", "cat", "view", "show", "open", "download", "fetch", "head",
             "tail", "load", "diff", "info", "stat", "inspect", "describe"),
    "list": ("list", "ls", "tree", "search", "find", "glob", "grep", "directory", "query"),
}
_ACCESS_BY_WORD = {word: access for access, words in _VERBS.items() for word in words}
# Argument keys that name a path, beyond the file tools' own.
_MORE_PATH_KEYS = ("source", "destination", "dest", "target", "from", "to", "src", "dst",
                   "folder", "root", "output", "output_path", "input_path", "filepath")
# Keys whose text is content, not a name, even when it starts like a path.
_TEXT_KEYS = frozenset({"content", "contents", "text", "body", "message", "data", "query",
                        "sql", "pattern", "description", "title", "comment", "old_str",
                        "new_str", "oldText", "newText", "edits", "command"})
_SOURCE_KEYS = frozenset({"source", "from", "src"})
_DEST_KEYS = frozenset({"destination", "dest", "target", "to", "dst"})


def tool_access(tool: str) -> tuple[str, ...]:
    """What an MCP tool does to the paths it names, from the verbs of its name."""
    words = re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1_\2", tool).lower())
    for word in words:
        access = _ACCESS_BY_WORD.get(word)
        if access is not None:
            return (access,)
    return ("read", "write")


def _looks_like_path(text: str) -> bool:
    return (0 < len(text) < 4096 and "\n" not in text
            and text.startswith(("/", "~", "./", "../", "file:")))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def argument_targets(tool: str, arguments: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """((path, access) pairs, URLs) named by an MCP call's top-level arguments."""
    if not isinstance(arguments, dict):
        return [], []
    accesses = tool_access(tool)
    paths: list[tuple[str, str]] = []
    urls: list[str] = []
    path_keys = {*PATH_KEYS, *_MORE_PATH_KEYS, "paths", "file_paths", "files"}
    for key, value in arguments.items():
        if not isinstance(key, str) or key in _TEXT_KEYS:
            continue
        for text in _strings(value):
            if looks_like_url(text):
                urls.append(text)  # a file: URL is judged as a URL and as the path it names
                if not text.startswith("file:"):
                    continue
            if key in URL_KEYS and not text.startswith(("/", "~", ".")):
                continue
            if not (key in path_keys or _looks_like_path(text)) or not text:
                continue
            text = text.removeprefix("file://")
            for access in accesses:
                if access == "move":
                    access = ("delete" if key in _SOURCE_KEYS else
                              "write" if key in _DEST_KEYS else "edit")
                elif key in _DEST_KEYS and access in ("read", "list"):
                    access = "write"  # copy_file's destination, download's output
                paths.append((text, access))
    return paths, urls
