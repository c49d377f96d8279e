"""The catalogue of programs: specs compiled from TOML tables a team can read and extend.

Each table is keyed by the command it describes, a program or a program and its
subcommands separated by spaces:

    ["git commit"]
    summary = "records staged changes"
    effects = ["vcs"]
    options = ["-m --message=VALUE", "-a --all", "-F --file=READ", "--amend : effect=history"]
    operands = ["read..."]

An option string names the option's aliases; `=ROLE` after a name says it takes a value
(`[=ROLE]`: an optional one, attached), and what the value is (`READ`, `WRITE`, `EDIT`,
`DELETE`, `LIST`, `EXEC`, `USE`, `CHDIR`, `URL`, `DATA`, `CODE`, `COMMAND`, `ANY`; any other
name is a plain value). After ` : ` come notes: `effect=A,B` (effects the option adds),
`operands=R1,R2...` (the operand roles while it is given), `-x=ROLE` (another option's value
becomes this role). Operand roles are listed in order; `ROLE...` takes any number (at most
one such), `ROLE?` is optional. The built-in tables live in `policy/packs/programs/`; a
policy adds or replaces entries with `[programs."NAME"]` tables of the same form.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runestone.effects.model import EFFECTS, ROLES, STYLES, CommandSpec, OptionSpec
from runestone.effects.options import DIGITS_OPTION, OptionTable

PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "policy" / "packs" / "programs"
ENTRY_KEYS = frozenset({"summary", "style", "negatable", "lenient", "options", "global",
                        "operands", "effects", "with_operands", "without_operands", "aliases",
                        "reader", "subcommand", "options_from", "cwd_access"})
READERS = frozenset({"find", "sed", "awk", "tar", "dd", "chmod", "test", "kill", "xargs",
                     "interpreter", "git-reset", "script-runner"})
# `-x`, `--long`, `-#`, and Windows switches (`/S`, `/-Y`, `/E:ON`).
_NAME_TOKEN = re.compile(r"^(-#|--?[A-Za-z0-9?][A-Za-z0-9_.?-]*|/-?[A-Za-z0-9?][A-Za-z0-9:]*)"
                         r"(\[?=([A-Za-z0-9_-]+)\]?)?$")
_ENTRY_NAME = re.compile(r"^[][A-Za-z0-9_.+@:-]+( [][A-Za-z0-9_.+@:-]+)*$")


class CatalogueError(ValueError):
    """A program table is malformed. The policy loader reports it as a policy error."""

    def __init__(self, message: str, *, source: str = "", field: str | None = None,
                 hint: str = "") -> None:
        self.message = message
        self.source = source
        self.field = field
        self.hint = hint
        super().__init__(f"{source or 'programs'}: {message}")


def _role(name: str) -> str:
    lowered = name.lower()
    return lowered if lowered in ROLES else "value"


def _strings(entry: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = entry.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CatalogueError(f"program {where!r}: '{key}' must be a list of strings", field=key)
    return tuple(value)


def _effects(values: tuple[str, ...], where: str, key: str) -> tuple[str, ...]:
    for value in values:
        if value not in EFFECTS:
            raise CatalogueError(f"program {where!r}: unknown effect {value!r} in '{key}'",
                                 field=key, hint=f"effects: {', '.join(EFFECTS)}")
    return values


def _operand_roles(values: tuple[str, ...], where: str, key: str) -> tuple[str, ...]:
    many = 0
    for value in values:
        base = value.removesuffix("...").removesuffix("?")
        if base not in ROLES:
            raise CatalogueError(f"program {where!r}: unknown operand role {value!r} in "
                                 f"'{key}'", field=key, hint=f"roles: {', '.join(sorted(ROLES))}")
        many += value.endswith("...")
    if many > 1:
        raise CatalogueError(f"program {where!r}: at most one operand role may repeat ('...')",
                             field=key)
    return values


def parse_option(text: str, where: str) -> OptionSpec:
    """Compile one option string (`-o --output=WRITE : effect=write`)."""
    names_part, _, notes_part = text.partition(" : ")
    names: list[str] = []
    value, role = "none", "value"
    for token in names_part.split():
        match = _NAME_TOKEN.match(token)
        if match is None:
            raise CatalogueError(f"program {where!r}: cannot read option {text!r} (at "
                                 f"{token!r})", field="options")
        names.append(match.group(1))
        if match.group(2):
            value = "optional" if match.group(2).startswith("[") else "required"
            role = _role(match.group(3))
    if not names:
        raise CatalogueError(f"program {where!r}: empty option {text!r}", field="options")
    effects: tuple[str, ...] = ()
    operands: tuple[str, ...] | None = None
    value_roles: list[tuple[str, str]] = []
    stops = only = exact = noneg = False
    second = ""
    position = -1
    for note in notes_part.split():
        if note in ("stop", "only", "exact", "noneg"):
            stops = stops or note == "stop"
            only = only or note == "only"
            exact = exact or note == "exact"
            noneg = noneg or note == "noneg"
            continue
        key, sep, rest = note.partition("=")
        if not sep:
            raise CatalogueError(f"program {where!r}: option note {note!r} needs a value",
                                 field="options")
        items = tuple(r for r in rest.split(",") if r)
        if key == "effect":
            effects += _effects(items, where, "options")
        elif key == "operands":
            operands = _operand_roles(items, where, "options")
        elif key == "second":
            second = _role(rest)
        elif key == "pos" and rest.isdigit():
            position = int(rest)
        elif key.startswith("-"):
            value_roles.append((key, _role(rest)))
        else:
            raise CatalogueError(f"program {where!r}: unknown option note {key!r}",
                                 field="options")
    return OptionSpec(tuple(names), value, role, effects, operands, tuple(value_roles), stops,
                      only, exact, noneg, second, position)


def _cwd_access(entry: dict[str, Any], name: str) -> str:
    value = entry.get("cwd_access", "")
    if value not in ("", "read", "write", "list"):
        raise CatalogueError(f"program {name!r}: cwd_access must be read, write or list",
                             field="cwd_access")
    return value


def compile_entry(name: str, entry: Any, children: tuple[str, ...]) -> CommandSpec:
    """Compile one table into a spec. Raises CatalogueError naming the field."""
    if not _ENTRY_NAME.match(name):
        raise CatalogueError(f"program table name {name!r} must be a command and its "
                             "subcommands separated by single spaces")
    if not isinstance(entry, dict):
        raise CatalogueError(f"program {name!r} must be a table")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise CatalogueError(f"program {name!r} has unknown key {unknown[0]!r}",
                             field=unknown[0], hint=f"keys: {', '.join(sorted(ENTRY_KEYS))}")
    style = entry.get("style", "gnu")
    if style not in STYLES:
        raise CatalogueError(f"program {name!r}: style must be one of {', '.join(STYLES)}",
                             field="style")
    reader = entry.get("reader", "")
    if reader and reader not in READERS:
        raise CatalogueError(f"program {name!r}: unknown reader {reader!r}", field="reader",
                             hint=f"readers: {', '.join(sorted(READERS))}")
    subcommand = entry.get("subcommand", "required")
    if subcommand not in ("required", "optional"):
        raise CatalogueError(f"program {name!r}: subcommand must be required or optional",
                             field="subcommand")
    summary = entry.get("summary", "")
    if not isinstance(summary, str):
        raise CatalogueError(f"program {name!r}: summary must be a string", field="summary")
    return CommandSpec(
        path=tuple(name.split(" ")),
        style=style + ("+neg" if entry.get("negatable") else ""),
        options=tuple(parse_option(o, name) for o in _strings(entry, "options", name)),
        operands=_operand_roles(_strings(entry, "operands", name), name, "operands"),
        effects=_effects(_strings(entry, "effects", name), name, "effects"),
        with_operands=_effects(_strings(entry, "with_operands", name), name, "with_operands"),
        without_operands=_effects(_strings(entry, "without_operands", name), name,
                                  "without_operands"),
        subcommands=children,
        aliases=_strings(entry, "aliases", name),
        global_options=tuple(parse_option(o, name) for o in _strings(entry, "global", name)),
        reader=reader,
        subcommand_optional=subcommand == "optional",
        lenient=bool(entry.get("lenient", False)),
        cwd_access=_cwd_access(entry, name),
        summary=summary,
    )


def _with_borrowed_options(name: str, entry: Any, tables: dict[str, Any], origin: str,
                           seen: tuple[str, ...] = ()) -> Any:
    """`options_from = ["git diff"]`: this entry also takes those entries' options."""
    if not isinstance(entry, dict) or "options_from" not in entry:
        return entry
    if name in seen:
        raise CatalogueError(f"program {name!r}: options_from goes round in a circle "
                             f"({' -> '.join([*seen, name])})", source=origin,
                             field="options_from")
    borrowed: list[str] = []
    for other in _strings(entry, "options_from", name):
        source = tables.get(other)
        if not isinstance(source, dict):
            raise CatalogueError(f"program {name!r}: options_from names {other!r}, which is "
                                 "not a program table", source=origin, field="options_from")
        source = _with_borrowed_options(other, source, tables, origin, (*seen, name))
        borrowed.extend(_strings(source, "options", other))
    merged = {k: v for k, v in entry.items() if k != "options_from"}
    merged["options"] = [*_strings(entry, "options", name), *borrowed]
    return merged


class Catalogue:
    """Specs by command path, with subcommand lookup by name or alias.

    Entries are compiled when first looked up: a hook reads one or two programs, not the
    hundreds the catalogue knows. `validate()` compiles every entry (done once, before a
    parsed catalogue is cached, and for a policy's own entries when it loads)."""

    def __init__(self, tables: dict[str, Any], origin: str = "catalogue") -> None:
        self.tables = tables
        self.origin = origin
        self._children: dict[str, list[str]] = {}
        self._aliases: dict[tuple[str, ...], tuple[str, ...]] = {}
        for name, entry in tables.items():
            parts = tuple(name.split(" "))
            if len(parts) > 1:
                self._children.setdefault(" ".join(parts[:-1]), []).append(parts[-1])
            aliases = entry.get("aliases", ()) if isinstance(entry, dict) else ()
            if isinstance(aliases, list):
                for alias in aliases:
                    if isinstance(alias, str):
                        self._aliases[(*parts[:-1], alias)] = parts
        self._specs: dict[tuple[str, ...], CommandSpec | None] = {}
        self._tables: dict[tuple[object, ...], OptionTable] = {}

    def _compile(self, path: tuple[str, ...]) -> CommandSpec | None:
        name = " ".join(path)
        entry = self.tables.get(name)
        if entry is None:
            return None
        if len(path) > 1 and " ".join(path[:-1]) not in self.tables:
            raise CatalogueError(f"program {name!r} has no parent table "
                                 f"[{' '.join(path[:-1])!r}]", source=self.origin)
        try:
            entry = _with_borrowed_options(name, entry, self.tables, self.origin)
            parent = self.tables.get(" ".join(path[:-1])) if len(path) > 1 else None
            if isinstance(parent, dict) and isinstance(entry, dict):
                # A subcommand is read by its program's parser unless it says otherwise.
                inherited = {k: parent[k] for k in ("style", "negatable")
                             if k in parent and k not in entry}
                entry = {**inherited, **entry}
            return compile_entry(name, entry, tuple(self._children.get(name, ())))
        except CatalogueError as exc:
            raise CatalogueError(exc.message, source=self.origin, field=exc.field,
                                 hint=exc.hint) from None

    def get(self, path: tuple[str, ...]) -> CommandSpec | None:
        if path in self._specs:
            return self._specs[path]
        real = path if " ".join(path) in self.tables else self._aliases.get(path)
        spec = self._compile(real) if real is not None else None
        self._specs[path] = spec
        return spec

    def validate(self, names: list[str] | None = None) -> None:
        """Compile entries (all of them by default); raises CatalogueError on the first
        that is malformed."""
        for name in names if names is not None else list(self.tables):
            self.get(tuple(name.split(" ")))

    def option_table(self, spec: CommandSpec,
                     inherited: tuple[OptionSpec, ...]) -> OptionTable:
        key = (spec.path, *(id(o) for o in inherited))
        table = self._tables.get(key)
        if table is None:
            table = OptionTable((*spec.options, *spec.global_options, *inherited),
                                negatable=spec.style.endswith("+neg"), lenient=spec.lenient)
            self._tables[key] = table
        return table

    def extended(self, tables: dict[str, Any], origin: str) -> Catalogue:
        """A catalogue with a policy's own tables added (replacing entries of the same
        name); the added entries are validated here."""
        catalogue = Catalogue({**self.tables, **tables}, origin)
        catalogue.validate(list(tables))
        return catalogue


def parse_tables(text: str, source: str) -> dict[str, Any]:
    """One catalogue file's tables."""
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover - the same parser, pure Python
        import tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"not valid TOML: {exc}", source=source) from exc


def _load_builtin() -> tuple[dict[str, Any], str]:
    """The built-in tables and a digest of their text.

    A file parsed before (with this text) comes from the policy cache in the runtime's
    state directory, as parsed policies do: a hook then imports no TOML parser."""
    from runestone.digest import sha256

    cache = _cache()
    tables: dict[str, Any] = {}
    digest = sha256()
    fresh: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(PROGRAMS_DIR.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        digest.update(path.name.encode() + b"\0" + text.encode("utf-8") + b"\0")
        data = cache.parsed(text) if cache is not None else None
        if data is None:
            data = parse_tables(text, str(path))
            fresh.append((text, data))
        for name in data:
            if name in tables:
                raise CatalogueError(f"program {name!r} is defined twice", source=str(path))
        tables.update(data)
    if fresh:
        Catalogue(tables, "programs").validate()  # only what compiled is cached
        if cache is not None:
            for text, data in fresh:
                cache.store_parsed(text, data)
    return tables, digest.hexdigest()


def _cache() -> Any:
    try:
        from runestone.home import layout
        from runestone.policy.cache import PolicyCache

        return PolicyCache.of(layout())
    except Exception:  # no home to cache in: parse every time
        return None


_BUILTIN: Catalogue | None = None
_DIGEST = ""


def builtin() -> Catalogue:
    """The catalogue shipped with Runestone, loaded once per process."""
    global _BUILTIN, _DIGEST
    if _BUILTIN is None:
        tables, _DIGEST = _load_builtin()
        _BUILTIN = Catalogue(tables, "programs")
    return _BUILTIN


def builtin_digest() -> str:
    """SHA-256 over the built-in tables' text: part of every policy's hash, since what
    the catalogue says decides."""
    builtin()
    return _DIGEST


__all__ = ["DIGITS_OPTION", "Catalogue", "CatalogueError", "builtin", "builtin_digest"]
