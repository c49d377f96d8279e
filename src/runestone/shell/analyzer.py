"""The shell analyzer: every simple command a bash string would run, and what stays opaque.

tree-sitter-bash finds the structure (lists, pipelines, compound commands, words,
redirections, substitutions); `words` gives each word its value; `programs` says which
arguments hold further commands or code. This module walks the tree, follows wrappers,
nested shells and exec hooks to the commands they run (to a depth bound), tracks `cd`, and
reports as `Opaque` whatever only the running shell could know. It never guesses: an unknown
command name is opaque, not "probably fine".
"""

from __future__ import annotations

import posixpath
import re
import threading
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from runestone.lazy_pattern import lazy
from runestone.shell import programs
from runestone.shell.base import AnalyzerBase, TooDeep
from runestone.shell.model import Redirect, ShellAnalysis, SimpleCommand, Word
from runestone.shell.syntax import first_error
from runestone.shell.syntax import node_text as _text
from runestone.shell.words import (
    BraceLimitError,
    WordEnv,
    expand_braces,
    is_whole_word,
    word_value,
)

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

MAX_LENGTH = 10_000
MAX_DEPTH = 8
_MAX_NESTING = 64
_IFS = lazy(r"\$\{?IFS\b")
_ASSIGNMENT = lazy(r"^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=")
_LEADING_BRACE = lazy(r"(?:^|[;&|(\n`]\s*)\{[^\s{}]*,[^{}]*\}")
_FD_TARGET = lazy(r"^(\d+|-)$")
_STATEMENT_SKIP = frozenset({"comment", ";", ";;", "&", "&&", "||", "|", "|&", "\n", "(", ")",
                             "{", "}", "do", "done", "then", "fi", "else", "elif", "if",
                             "while", "until", "for", "in", "case", "esac", "function", "!",
                             "select"})
_HEREDOC_PARTS = frozenset({"<<", "<<-", "heredoc_start", "heredoc_body", "heredoc_end",
                            "heredoc_content"})
_WORDISH = frozenset({"word", "string", "raw_string", "ansi_c_string", "concatenation",
                      "simple_expansion", "expansion", "number", "command_substitution",
                      "translated_string", "extglob_pattern", "regex"})
_SUBSTITUTIONS = ("command_substitution", "process_substitution")
_local = threading.local()


def _get_parser() -> Parser:
    """One tree-sitter parser per thread (a parser is not safe to share), built on first use."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        from tree_sitter import Language, Parser

        parser = Parser(Language(_bash_language()))
        _local.parser = parser
    return parser


@lru_cache(maxsize=1)  # once per process: every thread's parser shares the grammar
def _bash_language() -> object:
    """The bash grammar from tree_sitter_bash's compiled module, loaded without running the
    package's `__init__`: that imports importlib.resources (and with it tempfile, shutil,
    zipfile's readers: ~5 ms of every cold hook) only to read highlighting queries this
    never uses. Anything unexpected falls back to the ordinary import."""
    try:
        import os
        from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader
        from importlib.util import find_spec, module_from_spec, spec_from_file_location

        spec = find_spec("tree_sitter_bash")
        name = "tree_sitter_bash._binding"
        for directory in (spec.submodule_search_locations or ()) if spec else ():
            for suffix in EXTENSION_SUFFIXES:
                path = os.path.join(directory, "_binding" + suffix)
                if os.path.exists(path):
                    loader = ExtensionFileLoader(name, path)
                    found = spec_from_file_location(name, path, loader=loader)
                    if found is None:
                        continue
                    module = module_from_spec(found)
                    loader.exec_module(module)
                    return module.language()
    except Exception:  # any surprise: the package's own way below
        pass
    import tree_sitter_bash

    return tree_sitter_bash.language()


class _Scope(NamedTuple):
    """Where a command sits: the wrappers that led to it, and how its output is used."""

    via: tuple[str, ...] = ()
    depth: int = 0
    piped_out: bool = False
    remote: bool = False


class _Analyzer(AnalyzerBase):
    def __init__(self, source: str, cwd: str | None, home: str | None, max_depth: int) -> None:
        super().__init__(cwd, home, max_depth)
        self.source = source
        self.functions: set[str] = set()
        self.aliases: set[str] = set()
        self.nesting = 0
        self._stray_arguments: list[Node] = []
        self._process_substitution_argument = False
        self._upstream: list[SimpleCommand] = []

    # --- entry points ---------------------------------------------------------------------

    def run(self, text: str, scope: _Scope) -> None:
        """Parse `text` as bash and walk it."""
        if scope.depth > self.max_depth:
            self._opaque("too-deep", f"shell strings nested more than {self.max_depth} deep",
                         text)
            return
        data = text.encode("utf-8", "surrogatepass")
        tree = _get_parser().parse(_ascii_shadow(data))
        root = tree.root_node
        if root.has_error:
            if _LEADING_BRACE.search(text):
                self._opaque("brace-expansion", "brace expansion builds the command name from "
                             "pieces", text)
            self._opaque("parse-error", "the command does not parse as bash; what it would "
                         "run cannot be known", first_error(root, data) or text)
        saved_home = self.home
        if scope.remote:
            self.home = None
        self._statements(root, data, scope)
        self.home = saved_home

    # --- statements -----------------------------------------------------------------------

    def _statements(self, node: Node, data: bytes, scope: _Scope) -> None:
        for child in node.children:
            self._statement(child, data, scope)

    def _statement(self, node: Node, data: bytes, scope: _Scope) -> None:
        self.nesting += 1
        try:
            if self.nesting > _MAX_NESTING:
                raise TooDeep
            self._dispatch(node, data, scope)
        finally:
            self.nesting -= 1

    def _dispatch(self, node: Node, data: bytes, scope: _Scope) -> None:
        kind = node.type
        if kind in _STATEMENT_SKIP or (not node.is_named and kind not in ("ERROR",)):
            return
        if kind == "command":
            self._command(node, data, scope, [])
        elif kind == "redirected_statement":
            self._redirected(node, data, scope)
        elif kind == "pipeline":
            self._pipeline(node, data, scope)
        elif kind == "list":
            self._list(node, data, scope)
        elif kind == "subshell":
            saved = self.cwd
            self._statements(node, data, scope)
            self.cwd = saved
        elif kind == "function_definition":
            self._function(node, data, scope)
        elif kind == "variable_assignment":
            self._assignment(node, data, scope)
        elif kind in ("declaration_command", "unset_command"):
            self._declaration(node, data, scope)
        elif kind == "for_statement":
            for child in node.children_by_field_name("value"):
                self._substitutions(child, data, scope)
            body = node.child_by_field_name("body")
            if body is not None:
                self._statement(body, data, scope)
        elif kind == "test_command":
            self._substitutions(node, data, scope, deep_statements=True)
            self._test_command(node, data, scope)
        elif kind in ("arithmetic_expansion", "c_style_for_statement"):
            self._substitutions(node, data, scope, deep_statements=True)
        elif kind in _SUBSTITUTIONS:
            self._substitution(node, data, scope)
        elif kind == "case_statement":
            value = node.child_by_field_name("value")
            if value is not None:
                self._substitutions(value, data, scope)
            for child in node.children:
                if child.type == "case_item":
                    for grand in child.children:
                        if grand.type not in ("word", "extglob_pattern", "string",
                                              "raw_string", "concatenation") or \
                                child.field_name_for_child(child.children.index(grand)) != "value":
                            self._statement(grand, data, scope)
        elif kind in ("word", "string", "raw_string", "concatenation", "simple_expansion",
                      "expansion", "number", "ansi_c_string"):
            self._substitutions(node, data, scope)
        else:
            # if / while / until / compound statements / lists / negations / ERROR: walk in.
            self._statements(node, data, scope)

    def _list(self, node: Node, data: bytes, scope: _Scope) -> None:
        """`a && b || c`: tree-sitter nests a list in its left operand, one level per
        operator, so a chain of N commands would count as N levels of nesting and a long one
        be refused as too deep. Walked as the flat sequence bash runs, left to right."""
        operands: list[Node] = []
        while node.type == "list":
            children = node.children
            operands.extend(reversed(children[1:]))
            node = children[0]
        operands.append(node)
        for operand in reversed(operands):
            self._statement(operand, data, scope)

    def _redirected(self, node: Node, data: bytes, scope: _Scope) -> None:
        body = node.child_by_field_name("body")
        redirect_nodes = [c for c in node.children if c.id != (body.id if body else -1)
                          and c.type.endswith("redirect")]
        redirects, stdin_words, tails = self._redirects(redirect_nodes, data, scope)
        if tails and tails[0][0] == "pipe":
            # `cat <<EOF | sh`: tree-sitter hangs the rest of the pipeline on the here-doc.
            stages = [body, *tails[0][1]] if body is not None else tails[0][1]
            self._pipeline_stages(stages, data, scope, redirects, stdin_words)
            for _, rest in tails[1:]:
                for statement in rest:
                    self._statement(statement, data, scope)
            return
        if body is not None:
            self._with_redirects(body, data, scope, redirects, stdin_words)
        elif redirects:
            self._emit_bare_redirects(redirects, scope)
        for _, rest in tails:
            for statement in rest:
                self._statement(statement, data, scope)

    def _with_redirects(self, body: Node, data: bytes, scope: _Scope,
                        redirects: list[Redirect], stdin: list[tuple[str, Word]]) -> None:
        if body.type == "command":
            self._command(body, data, scope, redirects, stdin)
            return
        first = len(self.commands)
        self._statement(body, data, scope)
        if redirects:
            if len(self.commands) > first:
                target = self.commands[first]
                self.commands[first] = target._replace(redirects=target.redirects
                                               + tuple(redirects))
            else:
                self._emit_bare_redirects(redirects, scope)

    def _emit_bare_redirects(self, redirects: list[Redirect], scope: _Scope) -> None:
        """`> /etc/passwd` alone still truncates the file: keep it as a command with no name."""
        self.commands.append(SimpleCommand("", (), tuple(redirects), via=scope.via,
                                           cwd=self.cwd))

    def _pipeline(self, node: Node, data: bytes, scope: _Scope) -> None:
        stages = [c for c in node.children if c.is_named and c.type != "comment"]
        self._pipeline_stages(stages, data, scope, [], [])

    def _pipeline_stages(self, stages: list[Node], data: bytes, scope: _Scope,
                         first_redirects: list[Redirect],
                         first_stdin: list[tuple[str, Word]]) -> None:
        saved = self.cwd
        upstream: list[SimpleCommand] = []
        for index, stage in enumerate(stages):
            last = index == len(stages) - 1
            stage_scope = scope._replace(piped_out=not last)
            start = len(self.commands)
            stdin: list[tuple[str, Word]] = list(first_stdin) if index == 0 else []
            if index > 0:
                stdin.append(("pipe", Word("", "")))
            self._pipe_stage(stage, data, stage_scope, first_redirects if index == 0 else [],
                             stdin, upstream)
            upstream = [c for c in self.commands[start:] if not c.via[len(scope.via):]]
            self.cwd = saved if not last else self.cwd
        self.cwd = saved

    def _pipe_stage(self, stage: Node, data: bytes, scope: _Scope, redirects: list[Redirect],
                    stdin: list[tuple[str, Word]], upstream: list[SimpleCommand]) -> None:
        self._upstream = upstream
        try:
            if stage.type == "command":
                self._command(stage, data, scope, redirects, stdin)
            elif stage.type == "redirected_statement":
                body = stage.child_by_field_name("body")
                own = [c for c in stage.children if c.type.endswith("redirect")
                       and (body is None or c.id != body.id)]
                more, more_stdin, tails = self._redirects(own, data, scope)
                if body is not None:
                    self._with_redirects(body, data, scope, redirects + more, stdin + more_stdin)
                for _, rest in tails:
                    for statement in rest:
                        self._statement(statement, data, scope)
            else:
                self._with_redirects(stage, data, scope, redirects, [])
        finally:
            self._upstream = []

    # --- redirections ---------------------------------------------------------------------

    def _redirects(self, nodes: list[Node], data: bytes, scope: _Scope
                   ) -> tuple[list[Redirect], list[tuple[str, Word]], list[tuple[str, list]]]:
        """Files redirected to or from, what feeds stdin, and statements hung on here-docs."""
        redirects: list[Redirect] = []
        stdin: list[tuple[str, Word]] = []
        tails: list[tuple[str, list]] = []
        for node in nodes:
            if node.type == "file_redirect":
                redirects.extend(self._file_redirect(node, data, scope, stdin))
            elif node.type == "herestring_redirect":
                target = [c for c in node.children if c.is_named]
                if target:
                    self._substitutions(target[-1], data, scope)
                    stdin.append(("herestring", self._word(target[-1], data)))
            elif node.type == "heredoc_redirect":
                start = next((c for c in node.children if c.type == "heredoc_start"), None)
                body = next((c for c in node.children if c.type == "heredoc_body"), None)
                quoted = start is not None and any(q in _text(start, data) for q in "'\"\\")
                text = _text(body, data) if body is not None else ""
                if body is not None and not quoted:
                    self._substitutions(body, data, scope)
                stdin.append(("heredoc", Word(text, text, dynamic=not quoted and "$" in text)))
                for child in node.children:
                    if child.type in _HEREDOC_PARTS or not child.is_named:
                        continue
                    if child.type == "file_redirect":
                        redirects.extend(self._file_redirect(child, data, scope, stdin))
                    elif child.type == "pipeline" and _starts_with_pipe(child):
                        tails.append(("pipe", [c for c in child.children if c.is_named]))
                    else:
                        tails.append(("list", [child]))
        return redirects, stdin, tails

    def _file_redirect(self, node: Node, data: bytes, scope: _Scope,
                       stdin: list[tuple[str, Word]]) -> list[Redirect]:
        op = next((_text(c, data) for c in node.children if not c.is_named), ">")
        destinations = node.children_by_field_name("destination")
        if not destinations:
            return []
        target_node = destinations[0]
        # `echo a > f b`: tree-sitter keeps `b` on the redirect; it is an argument of echo.
        self._stray_arguments.extend(destinations[1:])
        if target_node.type == "process_substitution":
            self._substitution(target_node, data, scope)
            if op == "<":
                stdin.append(("process", Word(_text(target_node, data), "", dynamic=True)))
            return []
        self._substitutions(target_node, data, scope)
        target = self._word(target_node, data)
        if op in (">&", "<&", ">&-", "<&-") and _FD_TARGET.match(target.text):
            return []  # a descriptor duplicated or closed, not a file
        mode = "read" if op in ("<",) else "write"
        if op == "<":
            stdin.append(("file", target))
        return [Redirect(op, mode, target)]

    # --- simple commands ------------------------------------------------------------------

    def _command(self, node: Node, data: bytes, scope: _Scope, redirects: list[Redirect],
                 stdin: list[tuple[str, Word]] | None = None) -> None:
        stdin = list(stdin or [])
        assignments: list[tuple[str, Word]] = []
        words: list[Word] = []
        name_node = node.child_by_field_name("name")
        own_redirects: list[Node] = []
        strays = self._stray_arguments
        self._stray_arguments = []
        groups: list[_Group] = []
        last_end = node.start_byte
        for child in node.children:
            if not child.is_named:
                continue  # tokens like `==` that tree-sitter keeps anonymous are word bytes
            _add_gap(groups, data, last_end, child.start_byte)
            last_end = child.end_byte
            if child.type == "variable_assignment":
                assignments.append(self._assignment_pair(child, data, scope))
            elif child.type.endswith("redirect"):
                own_redirects.append(child)
            elif child.is_named and child.type != "comment":
                self._substitutions(child, data, scope)
                _add_word_node(groups, child, data)
        _add_gap(groups, data, last_end, node.end_byte)
        for index, group in enumerate(groups):
            is_name = (index == 0 and name_node is not None and bool(group.nodes)
                       and group.nodes[0].id == name_node.id)
            if len(group.nodes) == 1 and group.span == (group.nodes[0].start_byte,
                                                        group.nodes[0].end_byte) \
                    and self._is_process_substitution(group.nodes[0]):
                text = _text(group.nodes[0], data)
                words.append(Word(text, text, dynamic=True))
                self._process_substitution_argument = True
                continue
            raw = data[group.start:group.end].decode("utf-8", "surrogatepass")
            if not is_whole_word(raw):
                self._opaque("parse-error", "the parser and the quoting rules disagree on where "
                             "a word ends; what would run cannot be known", raw)
            words.extend(self._expand_raw(raw, command_name=is_name))
        more, more_stdin, tails = self._redirects(own_redirects, data, scope)
        strays = strays + self._stray_arguments
        for stray in strays:
            words.extend(self._expand(stray, data, scope))
        self._stray_arguments = []
        process_argument = self._process_substitution_argument
        self._process_substitution_argument = False
        if not words:
            for key, value in assignments:
                self._note_assignment(key, value, scope)
            if redirects or more:
                self._emit_bare_redirects(redirects + more, scope)
        else:
            self._emit(words, tuple(assignments), tuple(redirects + more), scope,
                       stdin + more_stdin, _text(node, data), process_argument=process_argument)
        for _, rest in tails:
            for statement in rest:
                self._statement(statement, data, scope)

    def _is_process_substitution(self, node: Node) -> bool:
        return node.type == "process_substitution" or any(
            c.type == "process_substitution" for c in node.children)

    def _emit(self, argv: list[Word], assignments: tuple[tuple[str, Word], ...],
              redirects: tuple[Redirect, ...], scope: _Scope, stdin: list[tuple[str, Word]],
              snippet: str, *, extra_args: bool = False, process_argument: bool = False) -> None:
        """Record one simple command and follow what it runs."""
        head = argv[0]
        if head.dynamic or not head.text:
            kind = "command-substitution" if ("$(" in head.raw or "`" in head.raw) else (
                "ifs" if _IFS.search(head.raw) else "variable-command")
            reasons = {
                "command-substitution": "the command name is the output of another command",
                "ifs": "the command is assembled with $IFS, a word-splitting trick",
                "variable-command": "the command name comes from a variable",
            }
            if head.dynamic:
                self._opaque(kind, reasons[kind], snippet)
            self.commands.append(SimpleCommand("", tuple(argv), redirects, assignments,
                                               scope.via, self.cwd, extra_args,
                                               piped_out=scope.piped_out))
            return
        if head.glob:
            self._opaque("glob-command", "the command name is a glob pattern, so the program "
                         "depends on the files present", snippet)
        name = posixpath.basename(head.text.rstrip("/")) or head.text
        if name in self.functions:
            self._opaque("function", f"runs the function '{name}' defined in the same command",
                         snippet)
        if name in self.aliases:
            self._opaque("alias", f"runs the alias '{name}' defined in the same command",
                         snippet)
        for word in argv[1:]:
            if word.dynamic and _IFS.search(word.raw):
                self._opaque("ifs", "an argument is split with $IFS, a word-splitting trick",
                             snippet)
                break
        semantics = programs.inspect(name, argv[1:])
        code, code_lang = semantics.code, semantics.code_lang
        code_assignments = [(k, v) for k, v in assignments
                            if k in programs.EXEC_VARIABLES or k in programs.LOAD_VARIABLES]
        for key, value in code_assignments:
            code = value.text if code is None else f"{code}\n{value.text}"
            code_lang = code_lang or ("shell" if key in programs.EXEC_VARIABLES else "library")
        source = stdin[-1][0] if stdin else ""
        command = SimpleCommand(name, tuple(argv), redirects, assignments, scope.via, self.cwd,
                                extra_args, code, code_lang, scope.piped_out,
                                is_wrapper=semantics.wrapper, stdin=source,
                                upstream=tuple(self._upstream) if source == "pipe" else ())
        self.commands.append(command)
        if semantics.code_dynamic:
            self._opaque("dynamic-code", f"{name} runs inline code that is only known at run "
                         "time", snippet)
        for key, value in code_assignments:
            if key in programs.EXEC_VARIABLES:
                self._nested_source(value, scope._replace(via=(*scope.via, f"{key}=")), snippet)
        self._track_cwd(name, argv)
        if name in ("alias",):
            self._alias(argv, scope, snippet)
        for nested in semantics.nested:
            inner_scope = scope._replace(via=(*scope.via, nested.via), piped_out=scope.piped_out,
                                  remote=scope.remote or nested.remote)
            if nested.source is not None:
                self._nested_source(nested.source, inner_scope, snippet)
            elif nested.argv:
                saved = self.cwd
                self._emit(list(nested.argv), nested.assignments, (), inner_scope, stdin,
                           snippet, extra_args=nested.extra_args or extra_args)
                self.cwd = saved
        if semantics.runs_file_operands and (process_argument or any(
                kind == "process" for kind, _ in stdin)):
            self._opaque("process-substitution-script", f"{name} runs a script produced by "
                         "another command", snippet)
        if semantics.stdin_language is not None:
            self._stdin_script(name, semantics.stdin_language, stdin, scope, snippet)

    def _stdin_script(self, name: str, language: str, stdin: list[tuple[str, Word]],
                      scope: _Scope, snippet: str) -> None:
        """A shell or interpreter reading its program from stdin: follow it if we can."""
        if not stdin:
            return  # an interactive session: the human at the terminal types the commands
        kind, word = stdin[-1]
        via = scope._replace(via=(*scope.via, f"{name} stdin"))
        if kind in ("heredoc", "herestring"):
            if language == "shell":
                self._nested_source(word, via, snippet)
            else:
                self._attach_code(word.text, language)
                for nested in programs.system_calls(word.text, f"{name} code"):
                    if nested.source is not None:
                        self._nested_source(nested.source, via, snippet)
                if word.dynamic:
                    self._opaque("dynamic-code", f"{name} runs code that is only known at run "
                                 "time", snippet)
            return
        if kind == "pipe" and language == "shell" and self._upstream and all(
                c.name == "echo" and not any(w.dynamic for w in c.argv)
                and not any(w.text.startswith("-") for w in c.args) for c in self._upstream):
            text = "\n".join(" ".join(w.text for w in c.args) for c in self._upstream)
            self._nested_source(Word(text, text), via, snippet)
            return
        what = {"pipe": "the output of the commands before it",
                "file": f"the file {word.text}", "process": "the output of another command"}
        self._opaque("piped-script", f"{name} runs {what.get(kind, 'input')} as a script; its "
                     "content cannot be known before it runs", snippet)

    def _attach_code(self, code: str, language: str) -> None:
        last = self.commands[-1]
        self.commands[-1] = last._replace(code=code, code_lang=language)

    def _nested_source(self, source: Word, scope: _Scope, snippet: str) -> None:
        if source.dynamic:
            self._opaque("dynamic-code", "a shell string that is only known at run time is "
                         "executed", snippet)
        saved = self.cwd
        if scope.remote:
            self.cwd = None
        self.run(source.text, scope._replace(depth=scope.depth + 1, piped_out=False))
        self.cwd = saved

    def _track_cwd(self, name: str, argv: list[Word]) -> None:
        if name not in ("cd", "pushd", "popd"):
            return
        operands = [w for w in argv[1:] if not w.text.startswith("-") or w.text == "-"]
        if name == "popd":
            self.cwd = None
        elif not operands:
            self.cwd = self.home if name == "cd" else None
        elif operands[0].dynamic or operands[0].text == "-":
            self.cwd = None
        else:
            from runestone.actions.paths import resolve_path

            self.cwd = resolve_path(operands[0].text, self.cwd, self.home or "/")

    def _alias(self, argv: list[Word], scope: _Scope, snippet: str) -> None:
        for word in argv[1:]:
            name, sep, value = word.text.partition("=")
            if sep:
                self.aliases.add(name)
                self._nested_source(Word(value, word.raw, word.dynamic),
                                    scope._replace(via=(*scope.via, "alias")), snippet)

    # --- other statements -----------------------------------------------------------------

    def _function(self, node: Node, data: bytes, scope: _Scope) -> None:
        name = node.child_by_field_name("name")
        if name is not None:
            self.functions.add(_text(name, data))
        body = node.child_by_field_name("body")
        if body is not None:
            saved = self.cwd
            self._statement(body, data, scope._replace(via=(*scope.via,
                                                             f"function {_text(name, data)}"
                                                             if name else "function")))
            self.cwd = saved

    def _assignment_pair(self, node: Node, data: bytes, scope: _Scope) -> tuple[str, Word]:
        text = _text(node, data)
        match = _ASSIGNMENT.match(text)
        key = match.group(1) if match else text.split("=", 1)[0]
        value_node = node.child_by_field_name("value")
        if value_node is not None:
            self._substitutions(value_node, data, scope)
            value = self._word(value_node, data)
        else:
            value = Word("", "")
        return key, value

    def _assignment(self, node: Node, data: bytes, scope: _Scope) -> None:
        key, value = self._assignment_pair(node, data, scope)
        self._note_assignment(key, value, scope)

    def _note_assignment(self, key: str, value: Word, scope: _Scope) -> None:
        if key == "HOME":
            self.home = None
        elif key == "PWD":
            self.cwd = None

    def _declaration(self, node: Node, data: bytes, scope: _Scope) -> None:
        words: list[Word] = []
        assignments: list[tuple[str, Word]] = []
        for child in node.children:
            if child.type == "variable_assignment":
                pair = self._assignment_pair(child, data, scope)
                assignments.append(pair)
                self._note_assignment(*pair, scope)
                words.append(Word(_text(child, data), _text(child, data), pair[1].dynamic))
            elif child.is_named:
                self._substitutions(child, data, scope)
                words.extend(self._expand(child, data, scope))
            else:
                words.append(Word(_text(child, data), _text(child, data)))
        if words:
            self.commands.append(SimpleCommand(words[0].text, tuple(words),
                                               assignments=tuple(assignments), via=scope.via,
                                               cwd=self.cwd, piped_out=scope.piped_out))

    def _test_command(self, node: Node, data: bytes, scope: _Scope) -> None:
        """`[ -f x ]` and `[[ ... ]]` run as the `[` / `[[` command over their operands."""
        opener = _text(node.children[0], data) if node.children else "["
        words = [Word(opener, opener)]
        groups: list[_Group] = []
        stack = list(reversed(node.children[1:-1]))
        while stack:
            child = stack.pop()
            if child.type in _WORDISH or not child.child_count:
                _add_word_node(groups, child, data)
            else:
                stack.extend(reversed(child.children))
        for group in groups:
            words.extend(self._expand_raw(data[group.start:group.end].decode("utf-8",
                                                                               "surrogatepass")))
        self.commands.append(SimpleCommand(opener, tuple(words), via=scope.via, cwd=self.cwd,
                                           piped_out=scope.piped_out))

    # --- words and substitutions ----------------------------------------------------------

    def _substitutions(self, node: Node, data: bytes, scope: _Scope,
                       deep_statements: bool = False) -> None:
        """Walk into `$(...)`, backquotes and `<(...)` anywhere inside `node`: they run."""
        if node.type in _SUBSTITUTIONS:
            self._substitution(node, data, scope)
            return
        for child in node.children:
            if child.type in _SUBSTITUTIONS:
                self._substitution(child, data, scope)
            elif child.child_count:
                self._substitutions(child, data, scope, deep_statements)

    def _substitution(self, node: Node, data: bytes, scope: _Scope) -> None:
        saved = self.cwd
        inner = scope._replace(piped_out=True)
        for child in node.children:
            if child.is_named:
                self._statement(child, data, inner)
        self.cwd = saved

    def _word(self, node: Node, data: bytes) -> Word:
        return word_value(_text(node, data), WordEnv(self.home, self.cwd))

    def _expand(self, node: Node, data: bytes, scope: _Scope) -> list[Word]:
        return self._expand_raw(_text(node, data))

    def _expand_raw(self, raw: str, command_name: bool = False) -> list[Word]:
        """Brace-expand then quote-remove one word; the command name must stay one word."""
        env = WordEnv(self.home, self.cwd)
        try:
            pieces = expand_braces(raw)
        except BraceLimitError as exc:
            self._opaque("brace-expansion", str(exc), raw)
            return [Word(raw, raw, dynamic=True)]
        if command_name and len(pieces) != 1:
            self._opaque("brace-expansion", "brace expansion in the command name builds the "
                         "command from pieces", raw)
            words = [word_value(p, env) for p in pieces]
            return [Word(words[0].text, raw, dynamic=True), *words[1:]]
        return [word_value(piece, env) for piece in pieces]


class _Group:
    """The byte span of one bash word and the tree nodes inside it (grown as nodes join)."""

    __slots__ = ("end", "nodes", "start")

    def __init__(self, start: int, end: int, nodes: list[Node]) -> None:
        self.start = start
        self.end = end
        self.nodes = nodes

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def _add_word_node(groups: list[_Group], node: Node, data: bytes) -> None:
    """Add a word node, joining it to its neighbours when no blank separates them.

    tree-sitter-bash sometimes splits one bash word into adjacent nodes (`''\\a`) and drops
    escaped blanks between nodes (`\\ 0`); bash joins whatever no unescaped blank
    separates, so the word boundaries are recomputed from the bytes between nodes.
    """
    if groups and groups[-1].end == node.start_byte:
        groups[-1].end = node.end_byte
        groups[-1].nodes.append(node)
        return
    groups.append(_Group(node.start_byte, node.end_byte, [node]))


def _add_gap(groups: list[_Group], data: bytes, start: int, end: int) -> None:
    """Turn anything but blanks and line continuations between nodes into word bytes."""
    i = start
    while i < end:
        c = data[i:i + 1]
        if c in (b" ", b"\t"):
            i += 1
            continue
        if data[i:i + 2] == b"\\\n":
            i += 2
            continue
        token_start = i
        while i < end and data[i:i + 1] not in (b" ", b"\t"):
            i += 2 if data[i:i + 1] == b"\\" else 1
        i = min(i, end)
        if groups and token_start == groups[-1].end:
            groups[-1].end = i
        else:
            groups.append(_Group(token_start, i, []))


_NON_ASCII = re.compile(rb"[\x80-\xff]")


def _ascii_shadow(data: bytes) -> bytes:
    """The same bytes with every non-ASCII byte replaced by `x`, for the parser's eyes only.

    tree-sitter-bash's scanner crashes the process on some characters outside the Basic
    Multilingual Plane (`{` followed by U+E0100, for one). Bash treats non-ASCII characters
    as ordinary word characters, so parsing a same-length ASCII shadow gives the same
    structure at the same byte offsets; words are then read from the real bytes.
    """
    return _NON_ASCII.sub(b"x", data)



def _starts_with_pipe(node: Node) -> bool:
    return bool(node.children) and node.children[0].type in ("|", "|&")



def analyze(source: str, *, cwd: str | None = None, home: str | None = None,
            max_length: int = MAX_LENGTH, max_depth: int = MAX_DEPTH) -> ShellAnalysis:
    """Every simple command `source` would run under bash, and every part left opaque.

    Never raises on any input. `cwd` and `home` place relative paths, `~` and `$HOME`;
    either may be None when unknown.
    """
    analyzer = _Analyzer(source, cwd, home, max_depth)
    return analyzer.analysis(source, _Scope(), max_length=max_length, screen=True)
