"""Helpers over tree-sitter syntax trees that the bash and PowerShell walkers share.

They take `Node` objects duck-typed, so importing this module loads no grammar."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Node


def node_text(node: Node, data: bytes) -> str:
    """The source a node spans (lone surrogates kept, so no input makes this raise)."""
    return data[node.start_byte:node.end_byte].decode("utf-8", "surrogatepass")


def first_error(root: Node, data: bytes) -> str | None:
    """The source around the first syntax error or missing token, in reading order.

    The snippet goes into an opaque part's reason, so a person sees where parsing failed."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            start = max(0, node.start_byte - 20)
            return data[start:node.end_byte + 20].decode("utf-8", "replace")
        stack.extend(reversed(node.children))
    return None
