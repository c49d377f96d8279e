"""tree-sitter-powershell, loaded lazily, and the gaps between its grammar and PowerShell.

The grammar parses the structure of PowerShell (statements, pipelines, `&&`/`||` chains,
script blocks, if/foreach/while, redirections, strings) but misses a few forms of command
mode that PowerShell accepts: bare words joined by commas into an array
(`Select-Object Name, Length`), backtick escapes outside strings (`` echo `"hi`" ``),
`./script.ps1` at the start of a statement, and a variable that begins a path
(`$env:USERPROFILE\\.ssh`). The parser sees a *shadow* of the source of the same length in
which those spots are neutral (an escape becomes plain word characters, such a comma a
blank, `./` becomes `.\\`, such a `$` a word character); the analyzer reads every value
from the real text, with PowerShell's own rules, at the same byte offsets. A shadow is
only made at a spot the parser reported as an error, and what still does not parse is
reported as not understood.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node, Parser, Tree

_local = threading.local()
_MAX_REPAIRS = 32


def get_parser() -> Parser:
    """One parser per thread, built on first use (a hook that never sees PowerShell never
    loads the grammar)."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        import tree_sitter_powershell
        from tree_sitter import Language, Parser

        parser = Parser(Language(tree_sitter_powershell.language()))
        _local.parser = parser
    return parser


def _escape_shadow(data: bytearray) -> None:
    """Backtick escapes become plain word bytes; a backtick before a line end, a blank.

    Quoted spans are followed (single quotes, double quotes with `$(...)` inside them,
    here-strings, comments) so that a backtick where it is literal (inside single quotes
    and comments) is left alone."""
    i, n = 0, len(data)
    # Each frame: [mode, open parentheses]; `$(` inside double quotes opens a code frame.
    stack: list[list] = [["code", 0]]
    while i < n:
        frame = stack[-1]
        mode = frame[0]
        c = data[i]
        if mode in ("single", "here-single"):
            if mode == "single" and c == 0x27:
                if i + 1 < n and data[i + 1] == 0x27:
                    i += 2
                    continue
                stack.pop()
            elif mode == "here-single" and c == 0x0A and data[i + 1:i + 3] == b"'@":
                stack.pop()
                i += 3
                continue
            i += 1
            continue
        if mode == "comment":
            if c in (0x0A, 0x0D):
                stack.pop()
            i += 1
            continue
        if mode == "block":
            if c == 0x23 and i + 1 < n and data[i + 1] == 0x3E:
                stack.pop()
                i += 2
                continue
            i += 1
            continue
        if c == 0x60 and i + 1 < n:  # backtick
            nxt = data[i + 1]
            if nxt in (0x0A, 0x0D):
                data[i] = 0x20
                i += 1
                continue
            width = 1
            while i + 1 + width < n and data[i + 1 + width] & 0xC0 == 0x80:
                width += 1
            data[i:i + 1 + width] = b"_" * (1 + width)
            i += 1 + width
            continue
        if mode in ("double", "here-double"):
            if mode == "double" and c == 0x22:
                if i + 1 < n and data[i + 1] == 0x22:
                    i += 2
                    continue
                stack.pop()
            elif mode == "here-double" and c == 0x0A and data[i + 1:i + 3] == b'"@':
                stack.pop()
                i += 3
                continue
            elif c == 0x24 and i + 1 < n and data[i + 1] == 0x28:
                stack.append(["code", 1])
                i += 2
                continue
            i += 1
            continue
        # code
        if c == 0x28:
            frame[1] += 1
        elif c == 0x29:
            frame[1] -= 1
            if frame[1] <= 0 and len(stack) > 1:
                stack.pop()
        elif c == 0x40 and data[i + 1:i + 2] in (b"'", b'"') and \
                data[i + 2:i + 3] in (b"\n", b"\r"):
            stack.append(["here-single" if data[i + 1] == 0x27 else "here-double", 0])
            i += 2
            continue
        elif c == 0x27:
            stack.append(["single", 0])
        elif c == 0x22:
            stack.append(["double", 0])
        elif c == 0x23 and (i == 0 or data[i - 1] in b" \t\r\n;|&({"):
            stack.append(["comment", 0])
        elif c == 0x3C and i + 1 < n and data[i + 1] == 0x23:
            stack.append(["block", 0])
            i += 1
        i += 1


def _errors(root: Node) -> list[Node]:
    """Every ERROR and MISSING node, in document order."""
    found: list[Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append(node)
        if node.has_error:
            stack.extend(reversed(node.children))
    return found


def _repair_at(tree: Tree, shadow: bytearray, data: bytes) -> bool:
    """Neutralise one of the grammar's known gaps near an error; False when none applies."""
    root = tree.root_node
    # Bare words joined by a comma, no blank before it: `Name,Length` parses as a token
    # that starts with the comma.
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "generic_token" and shadow[node.start_byte:node.start_byte + 1] \
                == b"," and node.start_byte > 0 and shadow[node.start_byte - 1] not in b" \t":
            shadow[node.start_byte] = 0x20
            return True
        if node.has_error:
            stack.extend(reversed(node.children))
    for error in _errors(root):
        if error.type == "ERROR":
            # `Name, Length`: a comma the parser could not place after a command.
            children = error.children
            for index, child in enumerate(children):
                if child.type == "," and index and children[index - 1].type in (
                        "pipeline", "pipeline_chain", "command", "generic_token",
                        "command_elements"):
                    shadow[child.start_byte] = 0x20
                    return True
            start = error.start_byte
            text = bytes(shadow[start:start + 3])
            if text.startswith((b"./", b"../")):
                shadow[start + (1 if text.startswith(b"./") else 2)] = 0x5C
                return True
        # A variable that begins a bare-word path: `$env:USERPROFILE\.ssh`, `$HOME/x`.
        node = error
        while node.parent is not None and node.parent.type != "command_elements":
            node = node.parent
        if node.parent is not None and shadow[node.start_byte] == 0x24:
            word = data[node.start_byte:node.end_byte]
            if b"(" not in word and b"{" not in word:
                shadow[node.start_byte] = 0x5F
                return True
    return False


def parse(data: bytes) -> tuple[Tree, bool]:
    """Parse PowerShell source; returns the tree (over the shadow) and whether it parsed
    without an error after the known gaps were neutralised."""
    shadow = bytearray(data)
    _escape_shadow(shadow)
    parser = get_parser()
    tree = parser.parse(bytes(shadow))
    for _ in range(_MAX_REPAIRS):
        if not tree.root_node.has_error:
            return tree, True
        if not _repair_at(tree, shadow, data):
            break
        tree = parser.parse(bytes(shadow))
    return tree, not tree.root_node.has_error
