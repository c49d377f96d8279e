"""Shell analysis: what a bash command string would run, built on tree-sitter-bash."""

from runestone.shell.analyzer import analyze
from runestone.shell.model import Opaque, Redirect, ShellAnalysis, SimpleCommand, Word

__all__ = ["Opaque", "Redirect", "ShellAnalysis", "SimpleCommand", "Word", "analyze"]
