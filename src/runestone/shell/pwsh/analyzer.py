"""The PowerShell analyzer: every command a PowerShell string would run, and what stays opaque.

tree-sitter-powershell finds the structure (statements, pipelines, `&&`/`||` chains, script
blocks, if/foreach/while/switch/try, redirections, function definitions); `words` gives
each argument its value by PowerShell's quoting rules; `names` resolves aliases (`rm` is
Remove-Item). Each command becomes a `SimpleCommand` with `dialect="powershell"`, whose
words keep what parameter binding needs:

- a parameter token is a word whose `raw` starts with `-` (`-Recurse`); `-Name:value` is
  the word `-Name:` followed by the value (a quoted `'-x'` is an argument, not a parameter);
- the elements of an array argument (`a,b`, `'a', 'b'`) after the first have a `raw` that
  starts with `,`, so binding sees one argument where PowerShell sees one.

For a program (not a cmdlet) the words are what the program receives: `-x:v` stays one
word, array elements are separate words. Script blocks, sub-expressions and parenthesised
pipelines anywhere are walked: their commands run too. What only the running shell knows
(a variable or expression as the command, Invoke-Expression of a computed string, a .NET
method Runestone does not model, a script downloaded and run) is reported as `Opaque`.
"""

from __future__ import annotations

import base64
import binascii
import ntpath
import posixpath
import re
from typing import TYPE_CHECKING, NamedTuple

from runestone.shell.base import AnalyzerBase, TooDeep
from runestone.shell.model import Opaque, Redirect, ShellAnalysis, SimpleCommand, Word
from runestone.shell.pwsh import grammar, names
from runestone.shell.pwsh.words import argument_value, string_value
from runestone.shell.syntax import first_error
from runestone.shell.syntax import node_text as _text

if TYPE_CHECKING:
    from tree_sitter import Node

MAX_LENGTH = 10_000
MAX_DEPTH = 8
_MAX_NESTING = 96
DIALECT = "powershell"
# PowerShell reads these as quotes and dashes too (SpecialCharacters in its tokenizer);
# the grammar does not, so a command using them is not analysed.
_ODD_QUOTES_DASHES = re.compile("[\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u2013\u2014\u2015]")
_BLANK = re.compile(rb"[ \t\r\n]")
_ARGUMENT_SKIP = frozenset({"command_argument_sep", "comment"})

# .NET members whose call only computes a value (no file, process, registry or network
# effect). Any other method call is opaque: Runestone does not model what it does.
_PURE_TYPES = frozenset({"math", "system.math", "string", "system.string", "char", "int",
                         "int32", "int64", "long", "double", "decimal", "float", "bool",
                         "datetime", "system.datetime", "timespan", "system.timespan", "guid",
                         "system.guid", "regex", "system.text.regularexpressions.regex",
                         "convert", "system.convert", "bitconverter", "system.bitconverter",
                         "io.path", "system.io.path", "uri", "system.uri", "version",
                         "text.encoding", "system.text.encoding", "array", "system.array",
                         "char[]", "string[]", "int[]", "byte[]", "object[]", "datetimeoffset"})
_PURE_METHODS = frozenset(m.lower() for m in (
    "ToString", "Trim", "TrimStart", "TrimEnd", "Split", "Replace", "Substring", "ToLower",
    "ToUpper", "ToLowerInvariant", "ToUpperInvariant", "Contains", "StartsWith", "EndsWith",
    "IndexOf", "LastIndexOf", "PadLeft", "PadRight", "Join", "Format", "Equals",
    "CompareTo", "GetType", "GetHashCode", "ToArray", "Round", "Floor", "Ceiling", "Abs",
    "Max", "Min", "Pow", "Sqrt", "Truncate", "AddDays", "AddHours", "AddMinutes",
    "AddSeconds", "ToShortDateString", "ToLongDateString", "ToLocalTime",
    "ToUniversalTime", "Normalize", "Insert", "Match", "Matches", "IsMatch", "Escape",
    "GetString", "GetBytes", "IsNullOrEmpty", "IsNullOrWhiteSpace", "Concat", "Parse",
    "TryParse", "ToInt32", "ToInt64", "ToBase64String", "FromBase64String", "NewGuid",
    "GetFileName", "GetExtension", "GetDirectoryName", "GetFileNameWithoutExtension",
    "Combine", "GetFullPath", "IsPathRooted", "ChangeExtension", "Now", "Where", "ForEach",
    "ContainsKey", "Keys", "Values", "Count", "Length", "Add", "get_Item", "Reverse",
    "Sort", "Clone", "ToCharArray", "Distinct", "Sum", "Average", "Invoke"))
_HOME_NOTE = "PowerShell variables other than the home are only known when the command runs"


class _Scope(NamedTuple):
    via: tuple[str, ...] = ()
    depth: int = 0
    piped_out: bool = False


class _Argument(NamedTuple):
    """One command argument: a parameter token, or a value (one word or an array's)."""

    parameter: str  # "-Name" or "-Name:" for a parameter token, "" for a value
    words: tuple[Word, ...]
    nodes: tuple[Node, ...]


class PowerShellAnalyzer(AnalyzerBase):
    """Walks one PowerShell string (and the strings it runs) into commands and opaque parts."""

    def __init__(self, cwd: str | None, home: str | None, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(cwd, home, max_depth)
        self.functions: set[str] = set()
        self.nesting = 0

    # --- entry ----------------------------------------------------------------------------

    def run(self, text: str, scope: _Scope) -> None:
        if scope.depth > self.max_depth:
            self._opaque("too-deep", f"scripts nested more than {self.max_depth} deep", text)
            return
        if _ODD_QUOTES_DASHES.search(text):
            self._opaque("odd-quotes", "the command uses typographic quotes or dashes, which "
                         "PowerShell reads as quotes and parameter dashes", text)
            return
        data = text.encode("utf-8", "surrogatepass")
        tree, clean = grammar.parse(data)
        if not clean:
            self._opaque("parse-error", "the command does not parse as PowerShell; what it "
                         "would run cannot be known", first_error(tree.root_node, data)
                         or text)
        self._walk(tree.root_node, data, scope)

    # --- statements -----------------------------------------------------------------------

    def _walk(self, node: Node, data: bytes, scope: _Scope) -> None:
        self.nesting += 1
        try:
            if self.nesting > _MAX_NESTING:
                raise TooDeep
            self._dispatch(node, data, scope)
        finally:
            self.nesting -= 1

    def _dispatch(self, node: Node, data: bytes, scope: _Scope) -> None:
        kind = node.type
        if kind == "comment":
            return
        if kind == "pipeline_chain":
            self._pipeline(node, data, scope)
        elif kind == "command":
            self._command(node, data, scope, "", [])
        elif kind == "function_statement":
            self._function(node, data, scope)
        elif kind == "invokation_expression":
            self._method_call(node, data)
            self._children(node, data, scope)
        elif kind in ("class_statement", "data_statement", "parallel_statement",
                      "inlinescript_statement", "sequence_statement"):
            self._opaque("unsupported", f"a {kind.replace('_', ' ')} is not analysed",
                         _text(node, data))
        elif kind == "assignment_expression":
            self._assignment(node, data)
            self._children(node, data, scope)
        else:
            self._children(node, data, scope)

    def _children(self, node: Node, data: bytes, scope: _Scope) -> None:
        for child in node.children:
            self._walk(child, data, scope)

    def _pipeline(self, node: Node, data: bytes, scope: _Scope) -> None:
        stages = [c for c in node.children if c.is_named and c.type != "comment"]
        upstream: list[SimpleCommand] = []
        for index, stage in enumerate(stages):
            stage_scope = scope._replace(piped_out=index < len(stages) - 1)
            start = len(self.commands)
            if stage.type == "command":
                self._command(stage, data, stage_scope, "pipe" if index else "", upstream)
            else:
                self._walk(stage, data, stage_scope)
            upstream = [c for c in self.commands[start:] if c.via == scope.via]

    def _function(self, node: Node, data: bytes, scope: _Scope) -> None:
        name_node = next((c for c in node.children if c.type == "function_name"), None)
        name = _text(name_node, data) if name_node is not None else ""
        if name:
            self.functions.add(name.lower())
        saved = self.cwd
        for child in node.children:
            if child.type != "function_name":
                self._walk(child, data, scope._replace(via=(*scope.via, f"function {name}")))
        self.cwd = saved

    def _assignment(self, node: Node, data: bytes) -> None:
        target = _text(node.children[0], data).lower() if node.children else ""
        if target in ("$env:userprofile", "$env:home", "${env:userprofile}"):
            self.home = None
        if target.startswith("$env:") or target.startswith("${env:"):
            self.notes.append(f"sets the environment variable {target[5:].strip('{}')}")

    def _method_call(self, node: Node, data: bytes) -> None:
        """A .NET method call: pure computations pass, anything else is opaque."""
        member = next((c for c in node.children if c.type == "member_name"), None)
        method = _text(member, data).lower() if member is not None else ""
        type_node = next((c for c in node.children if c.type == "type_literal"), None)
        static = any(c.type == "::" for c in node.children)
        text = _text(node, data)
        if static and type_node is not None:
            type_name = _text(type_node, data).strip("[]").strip().lower()
            if type_name in ("scriptblock", "system.management.automation.scriptblock"):
                self._opaque("dynamic-code", "[scriptblock]::Create builds code from a string "
                             "and runs it later", text)
                return
            if type_name in _PURE_TYPES or (type_name.endswith("encoding") and method in (
                    "getstring", "getbytes")) or (type_name in ("environment",
                                                                "system.environment")
                                                  and method in ("getfoldername",
                                                                 "getfolderpath",
                                                                 "getenvironmentvariable")):
                return
        elif method in _PURE_METHODS:
            return
        self._opaque("dotnet-method", f"calls the .NET method {method or '?'}, whose effect "
                     "Runestone does not model", text)

    # --- commands -------------------------------------------------------------------------

    def _command(self, node: Node, data: bytes, scope: _Scope, stdin: str,
                 upstream: list[SimpleCommand]) -> None:
        operator = ""
        name_node: Node | None = None
        elements: Node | None = None
        for child in node.children:
            if child.type == "command_invokation_operator":
                operator = _text(child, data).strip()
            elif child.type in ("command_name", "command_name_expr"):
                name_node = child
            elif child.type == "command_elements":
                elements = child
        snippet = _text(node, data)
        arguments, redirects = self._arguments(elements, data, scope) if elements else ([], [])
        if name_node is None:
            return
        head = self._name_word(name_node, data, scope, operator, snippet)
        if head is None:
            # The command is an expression (a script block invoked with `&`, a variable):
            # its arguments still count as parts.
            self._emit_unknown(arguments, redirects, scope, snippet)
            return
        if head.dynamic or not head.text:
            self._opaque("variable-command", "the command name comes from a variable or an "
                         "expression", snippet)
            self._emit_unknown(arguments, redirects, scope, snippet, head)
            return
        why = None if names.has_directory(head.text) else names.version_dependent(head.text)
        if why is not None:
            self._opaque("version-dependent", f"`{head.text}` means {why}", snippet)
        name, is_powershell = names.resolve(head.text)
        if operator == "." and names.has_directory(head.text):
            self.notes.append(f"dot-sources {head.text} into the session")
        if head.text.lower() in self.functions:
            self._opaque("function", f"runs the function '{head.text}' defined in the same "
                         "command", snippet)
        if head.glob:
            self._opaque("glob-command", "the command name is a wildcard pattern", snippet)
        argv = [head, *(_flatten(arguments, cmdlet=is_powershell and not names.has_directory(
            head.text)))]
        command = SimpleCommand(name, tuple(argv), tuple(redirects), (), scope.via, self.cwd,
                                piped_out=scope.piped_out, stdin=stdin,
                                upstream=tuple(upstream) if stdin == "pipe" else (),
                                dialect=DIALECT)
        self.commands.append(command)
        position = len(self.commands) - 1
        if self._follow(command, arguments, scope, snippet):
            self.commands[position] = command._replace(is_wrapper=True)

    def _name_word(self, node: Node, data: bytes, scope: _Scope, operator: str,
                   snippet: str) -> Word | None:
        raw = _text(node, data).strip()
        inner = node.named_children[0] if node.type == "command_name_expr" and \
            node.named_children else None
        if inner is not None and inner.type == "script_block_expression":
            self._walk(inner, data, scope._replace(via=(*scope.via, f"{operator} {{}}")))
            return None
        if inner is not None and inner.type not in ("command_name", "string_literal",
                                                    "path_command_name"):
            self._walk(inner, data, scope)
            return Word(raw, raw, dynamic=True)
        return string_value(raw, self.home) if raw[:1] in ("'", '"', "@") else \
            argument_value(raw, self.home)

    def _emit_unknown(self, arguments: list[_Argument], redirects: list[Redirect],
                      scope: _Scope, snippet: str, head: Word | None = None) -> None:
        argv = ([head] if head is not None else [Word("", "", dynamic=True)]) + \
            _flatten(arguments, cmdlet=False)
        self.commands.append(SimpleCommand("", tuple(argv), tuple(redirects), (), scope.via,
                                           self.cwd, piped_out=scope.piped_out,
                                           dialect=DIALECT))

    def _arguments(self, elements: Node, data: bytes,
                   scope: _Scope) -> tuple[list[_Argument], list[Redirect]]:
        """Group the command's elements into arguments as PowerShell separates them."""
        groups: list[list[Node]] = []
        redirects: list[Redirect] = []
        for child in elements.children:
            if child.type in _ARGUMENT_SKIP or (not child.is_named and child.type != ","):
                continue
            if child.type == "redirection":
                redirect = self._redirect(child, data, scope)
                if redirect is not None:
                    redirects.append(redirect)
                continue
            if groups and _joins(data, groups[-1][-1], child):
                groups[-1].append(child)
            else:
                groups.append([child])
        arguments: list[_Argument] = []
        for group in groups:
            for node in group:
                self._walk_inside(node, data, scope)
            raw = data[group[0].start_byte:group[-1].end_byte].decode("utf-8", "surrogatepass")
            if group[0].type == "command_parameter":
                name, colon, rest = raw.partition(":")
                arguments.append(_Argument(name + colon, (Word(name + colon, name + colon),),
                                           tuple(group)))
                if colon and rest.strip():
                    arguments.append(_Argument("", self._values(rest.strip()), tuple(group)))
                continue
            if group[0].type == "stop_parsing":
                for piece in raw.split()[1:]:
                    word = Word(piece, piece, "%" in piece)
                    arguments.append(_Argument("", (word,), tuple(group)))
                continue
            arguments.append(_Argument("", self._values(raw), tuple(group)))
        return arguments, redirects

    def _values(self, raw: str) -> tuple[Word, ...]:
        """One argument's words: the elements of an array, or the one value."""
        words: list[Word] = []
        for piece in _split_array(raw):
            stripped = piece.strip()
            if stripped:
                word = argument_value(stripped, self.home)
                words.append(word._replace(raw="," + word.raw) if words else word)
        return tuple(words) or (Word("", raw),)

    def _walk_inside(self, node: Node, data: bytes, scope: _Scope) -> None:
        """Commands inside an argument (script blocks, `$(...)`, `(...)`) run as well."""
        for child in node.children:
            if child.type == "script_block_expression":
                self._walk(child, data, scope._replace(via=(*scope.via, "{}")))
            elif child.type in ("sub_expression", "parenthesized_expression",
                                "array_expression", "invokation_expression",
                                "expandable_string_literal", "expandable_here_string_literal",
                                "pipeline", "command"):
                self._walk(child, data, scope._replace(piped_out=True))
            elif child.child_count:
                self._walk_inside(child, data, scope)

    def _redirect(self, node: Node, data: bytes, scope: _Scope) -> Redirect | None:
        operator = ""
        target: Node | None = None
        for child in node.children:
            if child.type in ("file_redirection_operator", "merging_redirection_operator"):
                operator = _text(child, data).strip()
            elif child.type == "redirected_file_name":
                target = child
        if target is None:
            return None  # `2>&1`: streams merged, no file
        self._walk_inside(target, data, scope)
        raw = _text(target, data).strip()
        if raw.lower() == "$null":
            return None
        word = string_value(raw, self.home) if raw[:1] in ("'", '"') else \
            argument_value(raw, self.home)
        return Redirect(operator, "write", word)

    # --- what commands run ----------------------------------------------------------------

    def _follow(self, command: SimpleCommand, arguments: list[_Argument], scope: _Scope,
                snippet: str) -> bool:
        """Follow what a command runs: nested scripts, shells, and the working directory.
        True when the command is a wrapper whose inner commands were analysed."""
        before = len(self.commands)
        name = command.name
        via = scope._replace(via=(*scope.via, name), depth=scope.depth + 1, piped_out=False)
        if name in ("Set-Location", "Push-Location"):
            self._track_cwd(arguments)
        elif name == "Pop-Location":
            self.cwd = None
        elif name == "Invoke-Expression":
            self._invoke_expression(command, arguments, via, snippet)
        elif name == "cmd":
            self._cmd(command, via, snippet)
        elif name in ("powershell", "pwsh", "powershell_ise"):
            self._powershell_cli(command, via, snippet)
        elif name in ("bash", "sh", "wsl") and len(command.args) >= 2:
            self._bash(command, via, snippet)
        elif name == "Start-Process":
            self._start_process(command, arguments, via, snippet)
        return name in ("Invoke-Expression", "cmd", "powershell", "pwsh", "bash", "sh", "wsl",
                        "Start-Process") and len(self.commands) > before

    def _track_cwd(self, arguments: list[_Argument]) -> None:
        """Set-Location [-Path|-LiteralPath] DIR; anything else leaves the place unknown."""
        target: Word | None = None
        index = 0
        while index < len(arguments):
            argument = arguments[index]
            key = argument.parameter.lower().rstrip(":")
            if not key:
                if target is not None or len(argument.words) != 1:
                    self.cwd = None
                    return
                target = argument.words[0]
            elif key in ("-pspath", "-lp") or _is_prefix(key, "-path", 4) or \
                    _is_prefix(key, "-literalpath", 2):
                if index + 1 >= len(arguments) or arguments[index + 1].parameter:
                    self.cwd = None
                    return
                target = arguments[index + 1].words[0]
                index += 1
            elif not _is_prefix(key, "-passthru", 3):
                self.cwd = None
                return
            index += 1
        if target is None:
            self.cwd = self.home
            return
        self.cwd = None if target.dynamic else join_cwd(self.cwd, target.text, self.home)

    def _invoke_expression(self, command: SimpleCommand, arguments: list[_Argument],
                           scope: _Scope, snippet: str) -> None:
        values = [a for a in arguments if not a.parameter]
        if not values:
            if command.stdin == "pipe":
                self._opaque("piped-script", "Invoke-Expression runs the output of the "
                             "commands before it as a script; its content cannot be known "
                             "before it runs", snippet)
            return
        word = values[0].words[0]
        if word.dynamic:
            self._opaque("dynamic-code", "Invoke-Expression runs a string that is only known "
                         "at run time", snippet)
            return
        self.run(word.text, scope)

    def _cmd(self, command: SimpleCommand, scope: _Scope, snippet: str) -> None:
        args = list(command.args)
        for index, word in enumerate(args):
            flag = word.text.lower()
            if flag in ("/c", "/k", "/r") or flag.startswith(("/c ", "/k ")):
                rest = args[index + 1:]
                if any(w.dynamic for w in rest):
                    self._opaque("dynamic-code", "cmd runs a line that is only known at run "
                                 "time", snippet)
                from runestone.shell.cmd import CmdAnalyzer, slash_c_line

                line = slash_c_line(" ".join(_cmd_quote(w.text) for w in rest))
                inner = CmdAnalyzer(self.cwd, self.home, self.max_depth)
                inner.run(line, scope.via, scope.depth)
                self._merge(inner.commands, inner.opaque, inner.notes)
                return
            if not flag.startswith("/"):
                break
        self._opaque("interactive-shell", "cmd without /c starts an interactive shell or "
                     "reads commands from elsewhere", snippet)

    def _powershell_cli(self, command: SimpleCommand, scope: _Scope, snippet: str) -> None:
        """`powershell -Command X`, `pwsh -c X`, `-EncodedCommand B64`, `-File F`."""
        args = list(command.args)
        index = 0
        takes_value = ("-executionpolicy", "-ep", "-ex", "-windowstyle", "-w", "-version",
                       "-v", "-inputformat", "-if", "-outputformat", "-of", "-configurationname",
                       "-psconsolefile", "-workingdirectory", "-wd", "-settingsfile",
                       "-custompipename", "-configurationfile")
        while index < len(args):
            word = args[index]
            flag = word.text.lower()
            if word.dynamic:
                self._opaque("dynamic-code", "the PowerShell command line is only known at run "
                             "time", snippet)
                return
            if not flag.startswith(("-", "/")):
                break
            key = "-" + flag[1:]
            if _is_prefix(key, "-command", 2) or key == "-c":
                rest = args[index + 1:]
                if [w.text for w in rest] == ["-"]:
                    self._stdin_script(command, snippet)
                    return
                if any(w.dynamic for w in rest):
                    self._opaque("dynamic-code", "PowerShell runs a script that is only known "
                                 "at run time", snippet)
                self.run(" ".join(w.text for w in rest), scope)
                return
            if _is_prefix(key, "-encodedcommand", 2) or key in ("-e", "-ec", "-enc"):
                if index + 1 >= len(args):
                    break
                script = _decode_utf16_base64(args[index + 1].text)
                if script is None:
                    self._opaque("encoded-command", "-EncodedCommand holds text that is not "
                                 "UTF-16LE base64", snippet)
                    return
                self.notes.append("decoded -EncodedCommand")
                self.run(script, scope._replace(via=(*scope.via, "-EncodedCommand")))
                return
            if _is_prefix(key, "-file", 2) or key == "-f":
                return  # the catalogue reads the script file as code it runs
            if key in takes_value or any(_is_prefix(key, v, 4) for v in takes_value):
                index += 2
                continue
            index += 1
        rest = args[index:]
        if not rest:
            if command.stdin:
                self._stdin_script(command, snippet)
            return
        if command.name == "powershell":
            # Windows PowerShell takes the rest of its command line as a command.
            self.run(" ".join(w.text for w in rest), scope)

    def _stdin_script(self, command: SimpleCommand, snippet: str) -> None:
        self._opaque("piped-script", f"{command.name} runs its standard input as a script; "
                     "its content cannot be known before it runs", snippet)

    def _bash(self, command: SimpleCommand, scope: _Scope, snippet: str) -> None:
        args = [w.text for w in command.args]
        if "-c" not in args and "-lc" not in args:
            return
        position = args.index("-c") if "-c" in args else args.index("-lc")
        if position + 1 >= len(args):
            return
        script = command.args[position + 1]
        if script.dynamic:
            self._opaque("dynamic-code", f"{command.name} runs a script that is only known at "
                         "run time", snippet)
            return
        from runestone.shell.analyzer import analyze

        inner = analyze(script.text, cwd=None, home=None)
        prefixed = [c._replace(via=(*scope.via, *c.via)) for c in inner.commands]
        self._merge(prefixed, list(inner.opaque), list(inner.notes))

    def _start_process(self, command: SimpleCommand, arguments: list[_Argument],
                       scope: _Scope, snippet: str) -> None:
        """Start-Process FILE [-ArgumentList ARGS]: the program it starts runs too."""
        file_word: Word | None = None
        arg_words: list[Word] = []
        positional = 0
        index = 0
        while index < len(arguments):
            argument = arguments[index]
            key = argument.parameter.lower().rstrip(":")
            if key:
                has_value = index + 1 < len(arguments) and not arguments[index + 1].parameter
                if _is_prefix(key, "-filepath", 2) or key in ("-path", "-pspath", "-lp"):
                    file_word = arguments[index + 1].words[0] if has_value else None
                    index += 2
                    continue
                if _is_prefix(key, "-argumentlist", 2) or key == "-args":
                    arg_words = list(arguments[index + 1].words) if has_value else []
                    index += 2
                    continue
                index += 2 if has_value and not _is_switch_of_start_process(key) else 1
                continue
            if positional == 0:
                file_word = argument.words[0]
            elif positional == 1:
                arg_words = list(argument.words)
            positional += 1
            index += 1
        if file_word is None or file_word.dynamic or any(w.dynamic for w in arg_words):
            self._opaque("dynamic-code", "Start-Process starts a program that is only known at "
                         "run time", snippet)
            return
        line_words: list[str] = []
        for word in arg_words:
            line_words.extend(_split_windows_command_line(word.text))
        argv = [Word(file_word.text, file_word.raw), *(Word(t, t) for t in line_words)]
        name, _ = names.resolve(file_word.text)
        inner = SimpleCommand(name, tuple(argv), (), (), scope.via, self.cwd, dialect=DIALECT)
        self.commands.append(inner)
        self._follow(inner, [_Argument("", (w,), ()) for w in argv[1:]], scope, snippet)

    # --- bookkeeping ----------------------------------------------------------------------

    def _merge(self, commands: list[SimpleCommand], opaque: list[Opaque],
               notes: list[str]) -> None:
        self.commands.extend(commands)
        for entry in opaque:
            if entry not in self.opaque:
                self.opaque.append(entry)
        self.notes.extend(notes)


# --- helpers ------------------------------------------------------------------------------


def _flatten(arguments: list[_Argument], *, cmdlet: bool) -> list[Word]:
    """The words a cmdlet binds (parameter tokens, arrays marked) or a program receives."""
    words: list[Word] = []
    for index, argument in enumerate(arguments):
        if argument.parameter:
            if not cmdlet and argument.parameter.endswith(":") and index + 1 < len(arguments):
                continue  # joined with its value below
            words.append(argument.words[0])
            continue
        if not cmdlet and index and arguments[index - 1].parameter.endswith(":"):
            first = argument.words[0]
            joined = arguments[index - 1].parameter + first.text
            words.append(Word(joined, arguments[index - 1].parameter + first.raw,
                              first.dynamic, first.glob))
            words.extend(w._replace(raw=w.raw.lstrip(",")) for w in argument.words[1:])
            continue
        for word in argument.words:
            words.append(word if cmdlet else word._replace(raw=word.raw.lstrip(",")))
    return words


def _joins(data: bytes, previous: Node, node: Node) -> bool:
    """Whether two argument nodes are one argument: nothing but an optional comma (with
    blanks around it) between them, as in `a"b"`, `-Name:value`, `a,b` and `a, b`."""
    if node.type == "command_parameter":
        return False
    gap = data[previous.end_byte:node.start_byte]
    before = data[previous.start_byte:previous.end_byte]
    after = data[node.start_byte:node.end_byte]
    if not _BLANK.search(gap) and not before[-1:].isspace():
        return previous.type != "command_parameter" or gap.strip() == b":" or \
            before.endswith(b":")
    return gap.strip() == b"," or (not gap.strip() and (before.rstrip().endswith(b",")
                                                        or after.startswith(b",")))


def _split_array(raw: str) -> list[str]:
    """Split an argument at its top-level commas (outside quotes, brackets and escapes)."""
    pieces: list[str] = []
    depth = 0
    start = 0
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "`":
            i += 2
            continue
        if c == "'":
            end = i + 1
            while end < n:
                if raw[end] == "'" and raw[end + 1:end + 2] != "'":
                    break
                end += 2 if raw[end] == "'" else 1
            i = end + 1
            continue
        if c == '"':
            end = i + 1
            while end < n and raw[end] != '"':
                end += 2 if raw[end] == "`" else 1
            i = end + 1
            continue
        if c in "({[":
            depth += 1
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            pieces.append(raw[start:i])
            start = i + 1
        i += 1
    pieces.append(raw[start:])
    return pieces


def _is_prefix(given: str, full: str, minimum: int) -> bool:
    return len(given) >= minimum and full.startswith(given)


def _is_switch_of_start_process(key: str) -> bool:
    return any(_is_prefix(key, s, 3) for s in ("-nonewwindow", "-passthru", "-wait",
                                                 "-usenewenvironment", "-loaduserprofile"))


def _decode_utf16_base64(text: str) -> str | None:
    try:
        raw = base64.b64decode(text, validate=True)
        return raw.decode("utf-16-le")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _cmd_quote(text: str) -> str:
    return f'"{text}"' if (" " in text or not text) and not text.startswith('"') else text


def _split_windows_command_line(line: str) -> list[str]:
    """Split a Windows command line as the C runtime does (double quotes group, `\\"`)."""
    words: list[str] = []
    current: list[str] = []
    quoted = False
    in_word = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == '"':
            quoted = not quoted
            in_word = True
        elif c in " \t" and not quoted:
            if in_word:
                words.append("".join(current))
                current = []
                in_word = False
        elif c == "\\" and line[i + 1:i + 2] == '"':
            current.append('"')
            in_word = True
            i += 1
        else:
            current.append(c)
            in_word = True
        i += 1
    if in_word:
        words.append("".join(current))
    return words


def is_windows_path(path: str) -> bool:
    """`C:\\x`, `c:/x`, `\\\\server\\share`: a path in Windows form."""
    return bool(re.match(r"^[A-Za-z]:[\\/]|^[\\/]{2}[^\\/]", path))


def join_cwd(cwd: str | None, target: str, home: str | None) -> str | None:
    """The directory `Set-Location TARGET` leaves the session in, or None when unknown."""
    place = _join(cwd, target, home)
    if place is not None and cwd is not None and re.match(r"^/[a-z]:", cwd):
        # The cwd is in the canonical form of Windows paths (runestone.actions.winpaths).
        from runestone.actions.winpaths import canonical

        return canonical(place)
    return place


def _join(cwd: str | None, target: str, home: str | None) -> str | None:
    if target in ("~", "") and home:
        return home
    if target.startswith(("~\\", "~/")) and home:
        target = home + target[1:]
    if is_windows_path(target):
        return ntpath.normpath(target)
    if re.match(r"^[A-Za-z]:$", target):
        return None  # `cd D:` goes to that drive's current directory
    if cwd is None:
        return None
    if is_windows_path(cwd):
        if target.startswith(("\\", "/")):
            return ntpath.normpath(cwd[:2] + target)
        return ntpath.normpath(ntpath.join(cwd, target))
    if target.startswith("/"):
        return posixpath.normpath(target)
    return posixpath.normpath(posixpath.join(cwd, target.replace("\\", "/")))




def analyze_powershell(source: str, *, cwd: str | None = None, home: str | None = None,
                       max_length: int = MAX_LENGTH, max_depth: int = MAX_DEPTH,
                       via: tuple[str, ...] = (), depth: int = 0) -> ShellAnalysis:
    """Every command `source` would run under PowerShell, and every part left opaque.

    Never raises on any input. `cwd` and `home` place relative paths and the home
    variables; either may be None when unknown.
    """
    analyzer = PowerShellAnalyzer(cwd, home, max_depth)
    return analyzer.analysis(source, _Scope(via=via, depth=depth), max_length=max_length,
                             screen=True)
