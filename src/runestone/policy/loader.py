"""Load a policy: parse TOML, resolve packs, validate, compile, hash, and run its own tests.

A policy with any error is refused whole (fail closed): the caller keeps the last good
policy or denies. Errors name the file, the line and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from runestone.actions.canonical import canonical_hash
from runestone.policy.cache import PolicyCache
from runestone.policy.engine import CompiledPolicy
from runestone.policy.errors import PolicyError
from runestone.policy.model import DECISIONS, Rule
from runestone.policy.rules import compile_rule

POLICY_KEYS = frozenset({"name", "description", "default", "include", "disable", "profile"})
TEST_KEYS = frozenset({"name", "command", "tool", "input", "cwd", "expect", "rule", "tainted",
                       "agent", "session"})
PACK_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
FORMAT_VERSION = 1


class _Document(NamedTuple):
    """One parsed file: its header, rules and tests, with where it came from."""

    source: str
    text: str
    header: dict[str, Any]
    rules: list[dict[str, Any]]
    tests: list[dict[str, Any]]
    base_dir: Path | None
    tables: dict[str, Any]  # the whole parsed document, as the policy cache keeps it
    # Read from the policy cache, which holds only documents that compiled before: its
    # rules' regular expressions are known to be valid, so they may compile on first use.
    compiled_before: bool = False


# The packs are package data beside this module. They are read as plain files:
# importlib.resources would import zipfile and its readers on every cold hook (~4 ms) for an
# installation layout (a zipped package) Runestone does not support anyway.
PACKS_DIR = Path(__file__).parent / "packs"


def builtin_packs() -> list[str]:
    """Names of the packs and presets shipped with Runestone."""
    return sorted(p.name[:-5] for p in PACKS_DIR.iterdir() if p.name.endswith(".toml"))


def _pack_text(name: str) -> str:
    if not PACK_NAME.match(name):
        raise PolicyError(f"invalid pack name {name!r}")
    resource = PACKS_DIR / f"{name}.toml"
    if not resource.is_file():
        raise PolicyError(
            f"unknown pack {name!r}",
            hint=f"built-in packs: {', '.join(builtin_packs())}",
        )
    return resource.read_text(encoding="utf-8")


def _line_of(text: str, pattern: str, start: int = 0) -> int | None:
    match = re.compile(pattern, re.MULTILINE).search(text, start)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _table_starts(text: str, array: str) -> list[int]:
    """Offsets of the `[[array]]` table headers in a document."""
    return [m.start() for m in re.finditer(rf"^[ \t]*\[\[[ \t]*{array}[ \t]*\]\]", text, re.M)]


def _table_lines(text: str, array: str) -> list[int]:
    """1-based line of each `[[array]]` table, in one pass over the document."""
    lines, line, position = [], 1, 0
    for start in _table_starts(text, array):
        line += text.count("\n", position, start)
        position = start
        lines.append(line)
    return lines


def locate(text: str, array: str, index: int, field: str | None = None) -> int | None:
    """Line of the `index`-th `[[array]]` table (and of `field` inside it), 1-based."""
    headers = _table_starts(text, array)
    if index >= len(headers):
        return None
    start = headers[index]
    end = headers[index + 1] if index + 1 < len(headers) else len(text)
    if field:
        top = field.split(".", 1)[0]
        match = re.compile(rf"^[ \t]*{re.escape(top)}[ \t]*=", re.M).search(text, start, end)
        if match:
            return text.count("\n", 0, match.start()) + 1
    return text.count("\n", 0, start) + 1


def _toml(text: str, source: str, cache: PolicyCache | None) -> tuple[dict[str, Any], bool]:
    """A document's tables, and whether they came from the cache (this exact text compiled
    before)."""
    data = cache.parsed(text) if cache is not None else None
    if data is not None:
        return data, True
    try:  # tomli's compiled wheel parses the packs about 3x faster than the stdlib's copy
        import tomli as tomllib
    except ImportError:  # pragma: no cover - the same parser, pure Python
        import tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        raise PolicyError(
            f"not valid TOML: {exc}",
            source=source,
            line=int(match.group(1)) if match else None,
        ) from exc
    return data, False


def _parse(text: str, source: str, base_dir: Path | None, kind: str,
           cache: PolicyCache | None) -> _Document:
    data, compiled_before = _toml(text, source, cache)
    header = data.get(kind, {})
    if not isinstance(header, dict):
        raise PolicyError(f"[{kind}] must be a table", source=source)
    unknown_top = sorted(set(data) - {kind, "rule", "test", "programs", "limit", "sandbox"})
    if unknown_top:
        raise PolicyError(
            f"unknown top-level key {unknown_top[0]!r}",
            source=source,
            line=_line_of(text, rf"^\s*\[*\s*{re.escape(unknown_top[0])}\b"),
            hint=f"a policy has a [{kind}] table, [[rule]] tables, [[test]] tables, "
                 "[programs.\"NAME\"] tables and [sandbox.\"NAME\"] profiles",
        )
    unknown = sorted(set(header) - POLICY_KEYS)
    if unknown:
        raise PolicyError(
            f"unknown key {unknown[0]!r} in [{kind}]",
            source=source,
            line=_line_of(text, rf"^\s*{re.escape(unknown[0])}\s*="),
            field=unknown[0],
        )
    rules = data.get("rule", [])
    tests = data.get("test", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise PolicyError("'rule' must be an array of tables: write [[rule]]", source=source)
    if not isinstance(tests, list) or not all(isinstance(t, dict) for t in tests):
        raise PolicyError("'test' must be an array of tables: write [[test]]", source=source)
    return _Document(source, text, header, rules, tests, base_dir, data, compiled_before)


def _strings(value: Any, what: str, source: str, text: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyError(f"'{what}' must be a list of strings", source=source,
                      line=_line_of(text, rf"^\s*{what}\s*="), field=what)


class _Resolver:
    """Walks includes depth-first, compiling each file's rules once, refusing cycles."""

    def __init__(self, cache: PolicyCache | None) -> None:
        self.cache = cache
        self.rules: list[Rule] = []
        self.tests: list[tuple[dict[str, Any], str, int | None]] = []
        self.examples: list[tuple[Rule, dict[str, Any], str, int | None]] = []
        self.seen: set[str] = set()
        self.stack: list[str] = []
        self.includes: list[str] = []
        self.documents: list[_Document] = []

    def add_document(self, doc: _Document) -> None:
        rule_lines = _table_lines(doc.text, "rule")
        for index, table in enumerate(doc.rules):
            try:
                rule = compile_rule(table, doc.source, known_valid=doc.compiled_before)
            except PolicyError as exc:
                raise PolicyError(
                    exc.message,
                    source=doc.source,
                    line=locate(doc.text, "rule", index, exc.field),
                    field=exc.field,
                    hint=exc.hint,
                ) from None
            self.rules.append(rule)
            line = rule_lines[index] if index < len(rule_lines) else None
            self.examples.append((rule, table, doc.source, line))
        test_lines = _table_lines(doc.text, "test")
        for index, case in enumerate(doc.tests):
            unknown = sorted(set(case) - TEST_KEYS)
            if unknown or "expect" not in case:
                problem = (f"unknown field {unknown[0]!r}" if unknown
                           else "a [[test]] needs 'expect'")
                raise PolicyError(problem, source=doc.source,
                                  line=locate(doc.text, "test", index, unknown[0] if unknown
                                              else None))
            self.tests.append((case, doc.source,
                               test_lines[index] if index < len(test_lines) else None))

    def include(self, name: str, base_dir: Path | None, origin: str, text: str) -> None:
        key = name
        if name.endswith(".toml"):
            path = (base_dir or Path.cwd()) / name
            key = str(path.resolve())
        if key in self.stack:
            raise PolicyError(f"include cycle: {' -> '.join([*self.stack, key])}", source=origin,
                              line=_line_of(text, rf"{re.escape(name)}"))
        if key in self.seen:
            return
        self.seen.add(key)
        self.includes.append(name)
        self.stack.append(key)
        try:
            if name.endswith(".toml"):
                path = Path(key)
                try:
                    body = path.read_text(encoding="utf-8")
                except OSError as exc:
                    raise PolicyError(f"cannot read included file {name!r}: {exc.strerror}",
                                      source=origin, line=_line_of(text, re.escape(name))
                                      ) from exc
                doc = _parse(body, str(path), path.parent, "pack", self.cache)
            else:
                try:
                    body = _pack_text(name)
                except PolicyError as exc:
                    raise PolicyError(exc.message, source=origin, hint=exc.hint,
                                      line=_line_of(text, re.escape(f'"{name}"'))) from None
                doc = _parse(body, f"pack:{name}", None, "pack", self.cache)
            self.walk(doc)
        finally:
            self.stack.pop()

    def walk(self, doc: _Document) -> None:
        self.documents.append(doc)
        for name in _strings(doc.header.get("include", []), "include", doc.source, doc.text):
            self.include(name, doc.base_dir, doc.source, doc.text)
        self.add_document(doc)


def _programs(documents: list[_Document]) -> dict[str, Any]:
    """The `[programs."NAME"]` tables of every document, the policy's own winning."""
    programs: dict[str, Any] = {}
    for doc in reversed(documents):
        table = doc.tables.get("programs", {})
        if not isinstance(table, dict):
            raise PolicyError("'programs' must be a table of program tables: write "
                              '[programs."NAME"]', source=doc.source)
        programs.update(table)
    return programs


def _profiles(documents: list[_Document]) -> dict[str, Any]:
    """The `[sandbox."NAME"]` profile tables of every document, the policy's own winning;
    each is checked here, so a bad profile refuses the policy like a bad rule."""
    profiles: dict[str, Any] = {}
    for doc in reversed(documents):
        table = doc.tables.get("sandbox", {})
        if not isinstance(table, dict):
            raise PolicyError("'sandbox' must be a table of profiles: write "
                              '[sandbox."NAME"]', source=doc.source)
        if table:
            from runestone.sandbox.profiles import ProfileError, check_table

            for name, profile in table.items():
                try:
                    check_table(name, profile, doc.source)
                except ProfileError as exc:
                    raise PolicyError(exc.message, source=doc.source, hint=exc.hint,
                                      field=exc.field,
                                      line=_line_of(doc.text, rf"^\s*\[\s*sandbox\s*\.\s*"
                                                    rf"\"?{re.escape(name)}\b")) from None
        profiles.update(table)
    return profiles


def _check_profile_names(rules: list[Rule], profile: str, profiles: dict[str, Any],
                         source: str, text: str) -> None:
    """Every profile a rule or the default names must exist (fail closed at load time)."""
    from runestone.sandbox.profiles import BUILTIN_NAMES

    known = {*BUILTIN_NAMES, *profiles}
    for rule in rules:
        if rule.profile and rule.profile not in known:
            raise PolicyError(f"rule {rule.id!r} names sandbox profile {rule.profile!r}, "
                              "which is not defined", source=rule.origin,
                              hint=f"profiles: {', '.join(sorted(known))}", field="profile")
    if profile not in known:
        raise PolicyError(f"'profile' names sandbox profile {profile!r}, which is not "
                          "defined", source=source, field="profile",
                          line=_line_of(text, r"^\s*profile\s*="),
                          hint=f"profiles: {', '.join(sorted(known))}")


def compile_policy_text(
    text: str,
    *,
    source: str = "<policy>",
    base_dir: Path | None = None,
    run_tests: bool = True,
    cache: PolicyCache | None = None,
) -> CompiledPolicy:
    """Compile a policy document. Raises PolicyError (or PolicyTestFailure) on any problem."""
    doc = _parse(text, source, base_dir, "policy", cache)
    header = doc.header
    default = header.get("default", "ask")
    if default not in DECISIONS:
        raise PolicyError(
            f"default must be one of deny, ask, sandbox, allow; got {default!r}",
            source=source, line=_line_of(text, r"^\s*default\s*="), field="default",
        )
    profile = header.get("profile", "default")
    if not isinstance(profile, str) or not profile:
        raise PolicyError("'profile' names the sandbox profile of default = \"sandbox\"",
                          source=source, line=_line_of(text, r"^\s*profile\s*="),
                          field="profile")
    resolver = _Resolver(cache)
    # The policy's own rules come first so that their reasons are the ones people read.
    resolver.add_document(doc)
    resolver.documents.append(doc)
    for name in _strings(header.get("include", []), "include", source, text):
        resolver.include(name, base_dir, source, text)

    disabled = _strings(header.get("disable", []), "disable", source, text)
    known = {rule.id for rule in resolver.rules}
    for rule_id in disabled:
        if rule_id not in known:
            raise PolicyError(
                f"'disable' names rule {rule_id!r}, which no included pack defines",
                source=source, line=_line_of(text, re.escape(f'"{rule_id}"')), field="disable",
            )
    rules = [rule for rule in resolver.rules if rule.id not in set(disabled)]
    programs = _programs(resolver.documents)
    profiles = _profiles(resolver.documents)
    if profiles or default == "sandbox" or any(rule.profile for rule in rules):
        _check_profile_names(rules, profile, profiles, source, text)
    by_id: dict[str, Rule] = {}
    for rule in rules:
        if rule.id in by_id:
            raise PolicyError(
                f"rule id {rule.id!r} is defined twice: in {by_id[rule.id].origin} and "
                f"{rule.origin}",
                source=source,
                hint="rule ids must be unique; rename one or disable the pack's rule",
            )
        by_id[rule.id] = rule

    from runestone.effects.catalogue import builtin_digest
    from runestone.policy.limits import compile_limits

    limits = compile_limits(doc.tables.get("limit", []), source)
    hashed: dict[str, Any] = {
        "format": FORMAT_VERSION, "default": default,
        "rules": [dict(rule.spec) for rule in rules],
        # What programs do decides as much as the rules do: the built-in catalogue (by
        # the digest of its tables) and the policy's own entries are part of the hash.
        "programs": {"builtin": builtin_digest(), "own": programs}}
    if limits:  # only then: a policy without limits keeps the hash it always had
        hashed["limits"] = [limit.spec() for limit in limits]
    if profiles or default == "sandbox" or "profile" in header:  # likewise
        hashed["sandbox"] = {"profile": profile, "own": profiles}
    policy_hash = canonical_hash(hashed)
    policy = CompiledPolicy(
        name=str(header.get("name", "") or Path(source).stem),
        default=default,
        rules=tuple(rules),
        hash=policy_hash,
        source=source,
        includes=tuple(resolver.includes),
        examples=tuple(resolver.examples),
        cases=tuple(resolver.tests),
        programs=programs,
        limits=limits,
        profile=profile,
        profiles=profiles,
    )
    if programs:
        from runestone.effects import CatalogueError

        try:
            policy.catalogue  # noqa: B018 - compiles and validates the policy's own entries
        except CatalogueError as exc:
            raise PolicyError(exc.message, source=source, field=exc.field,
                              hint=exc.hint) from None
    if cache is not None:  # every document compiled: later processes may skip parsing it
        for document in resolver.documents:
            if not document.compiled_before:
                cache.store_parsed(document.text, document.tables)
    if run_tests and not (cache and cache.is_verified(policy.hash)):
        from runestone.policy.selftest import require_passing

        require_passing(policy)
        if cache:
            cache.mark_verified(policy.hash)
    return policy


def load_policy(
    path: str | Path, *, run_tests: bool = True, cache: PolicyCache | None = None
) -> CompiledPolicy:
    """Load a policy file. An unreadable file is a PolicyError, never an empty policy."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror}", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy is not UTF-8: {exc}", source=str(path)) from exc
    return compile_policy_text(text, source=str(path), base_dir=path.parent, run_tests=run_tests,
                               cache=cache)


PRESETS = {
    "default": '[policy]\nname = "default"\ndefault = "ask"\ninclude = ["default"]\n',
    "developer": '[policy]\nname = "developer"\ndefault = "ask"\ninclude = ["developer"]\n',
    # The developer preset, with what it does not allow contained instead of asked: deny
    # and ask rules still win, and what is not understood still asks.
    "contained": '[policy]\nname = "contained"\ndefault = "sandbox"\nprofile = "default"\n'
                 'include = ["developer"]\n',
}


def load_preset(
    name: str, *, run_tests: bool = True, cache: PolicyCache | None = None
) -> CompiledPolicy:
    """A built-in preset: `default` (the packs; unknown asks), `developer` (plus
    allowances) or `contained` (developer, with unknown shell commands sandboxed)."""
    if name not in PRESETS:
        raise PolicyError(f"unknown preset {name!r}", hint=f"presets: {', '.join(PRESETS)}")
    return compile_policy_text(PRESETS[name], source=f"preset:{name}", run_tests=run_tests,
                               cache=cache)
