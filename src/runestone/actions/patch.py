"""Targets of a patch: which files an `apply_patch` call adds, updates, deletes or moves.

Two formats reach us: Codex's `*** Begin Patch` envelope and unified diffs (`--- a/x`,
`+++ b/x`). A patch whose targets cannot be read yields none, and the caller treats the
call as unknown rather than harmless.
"""

from __future__ import annotations

_CODEX = {
    "*** Add File: ": "write",
    "*** Update File: ": "edit",
    "*** Delete File: ": "delete",
    "*** Move to: ": "write",
}


def patch_targets(text: str) -> list[tuple[str, str]]:
    """Every (path, access) the patch touches, in order, without duplicates."""
    targets: list[tuple[str, str]] = []
    for line in text.splitlines():
        for prefix, access in _CODEX.items():
            if line.startswith(prefix):
                targets.append((line[len(prefix):].strip(), access))
        if line.startswith(("--- ", "+++ ")):
            path = line[4:].split("\t", 1)[0].strip()
            if path == "/dev/null":
                continue
            if path.startswith(("a/", "b/")):
                path = path[2:]
            targets.append((path, "edit"))
    seen: set[tuple[str, str]] = set()
    unique = []
    for target in targets:
        if target[0] and target not in seen:
            seen.add(target)
            unique.append(target)
    return unique
