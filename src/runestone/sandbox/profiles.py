"""Sandbox profiles: TOML tables that say what a contained command may touch.

A profile lists paths readable (`read`), writable (`write`), read-only inside the writable
ones (`readonly`) and hidden behind an empty tmpfs or file (`hide`); the network (`"none"`,
or the hosts the filtering proxy lets through); and the environment variables that pass
(`env`, names or globs). `default` and `networked` ship built in (`builtin.toml`); a policy
adds or replaces profiles with `[sandbox."NAME"]` tables. Each resolved profile has a hash,
recorded in the audit log beside the decision, so what contained a command is provable.

This module is stdlib only and parses the built-in file only when a profile is looked up:
the hook path pays nothing for sandboxing unless a decision is `sandbox`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple


class ProfileError(ValueError):
    """A profile that cannot be used; the policy loader reports it as a PolicyError. Its
    own class, so that `runestone sandbox run` need not import the policy engine (about
    200 ms of the shell analyser's start-up) to run a command."""

    def __init__(self, message: str, *, source: str = "", field: str | None = None,
                 hint: str = "") -> None:
        self.message, self.source, self.field, self.hint = message, source, field, hint
        super().__init__(f"{source + ': ' if source else ''}{message}"
                         + (f" (field '{field}')" if field else ""))


def profile_hash(spec: dict[str, Any]) -> str:
    """SHA-256 of the profile's canonical JSON: the same bytes and hash as
    `runestone.actions.canonical.canonical_hash` (sorted keys, compact, UTF-8), without
    importing the actions package."""
    import json

    from runestone.digest import sha256

    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return sha256(text.encode("utf-8")).hexdigest()

BUILTIN_FILE = Path(__file__).parent / "builtin.toml"
BUILTIN_NAMES = ("default", "networked")
PROFILE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
LIST_FIELDS = ("read", "write", "readonly", "hide", "env")
FIELDS = frozenset({"description", "extends", "network", *LIST_FIELDS})
PLACEHOLDERS = ("{project}", "{home}", "{runestone}", "{tmp}")
HOST = (r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*"
        r"[A-Za-z0-9])?)*(:[0-9]{1,5})?$")


class Profile(NamedTuple):
    """One resolved profile (its `extends` applied)."""

    name: str
    description: str
    read: tuple[str, ...]
    write: tuple[str, ...]
    readonly: tuple[str, ...]
    hide: tuple[str, ...]
    hosts: tuple[str, ...]  # empty: no network at all
    env: tuple[str, ...]
    hash: str

    @property
    def networked(self) -> bool:
        return bool(self.hosts)

    def spec(self) -> dict[str, Any]:
        """The resolved fields, as hashed."""
        return {"name": self.name, "read": list(self.read), "write": list(self.write),
                "readonly": list(self.readonly), "hide": list(self.hide),
                "network": list(self.hosts) or "none", "env": list(self.env)}


def from_spec(spec: dict[str, Any], expected_hash: str) -> Profile:
    """A profile from its resolved fields (as `Profile.spec` wrote them), refused unless it
    still has the hash it was decided with."""
    try:
        network = spec["network"]
        profile = Profile(name=str(spec["name"]), description="",
                          hosts=tuple(network) if isinstance(network, list) else (),
                          hash="", **{f: tuple(spec[f]) for f in LIST_FIELDS})
    except (KeyError, TypeError) as exc:
        raise ProfileError(f"a sandbox profile record is incomplete ({exc})") from None
    profile = profile._replace(hash=profile_hash(profile.spec()))
    if profile.hash != expected_hash:
        raise ProfileError("a sandbox profile record does not match the hash it was decided "
                          "with")
    return profile


def _error(name: str, message: str, source: str, field: str | None = None) -> ProfileError:
    return ProfileError(f"sandbox profile {name!r}: {message}", source=source, field=field,
                       hint="see docs/sandbox.md for a profile's fields")


def check_table(name: str, table: Any, source: str) -> None:
    """Validate one `[sandbox."NAME"]` table; raise ProfileError naming the field."""
    import re  # only where profiles are checked: running one needs no regular expression

    if not re.match(PROFILE_NAME, name):
        raise _error(name, "a name uses letters, digits, '.', '_' and '-'", source)
    if not isinstance(table, dict):
        raise _error(name, "must be a table", source)
    unknown = sorted(set(table) - FIELDS)
    if unknown:
        raise _error(name, f"unknown field {unknown[0]!r}", source, unknown[0])
    for field in ("description", "extends"):
        if field in table and not isinstance(table[field], str):
            raise _error(name, f"'{field}' must be a string", source, field)
    for field in LIST_FIELDS:
        value = table.get(field, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _error(name, f"'{field}' must be a list of non-empty strings", source, field)
        if field != "env":
            for path in value:
                if not path.startswith(("/", *PLACEHOLDERS)):
                    raise _error(name, f"'{field}' takes absolute paths or ones starting "
                                 f"with a placeholder ({', '.join(PLACEHOLDERS)}); got "
                                 f"{path!r}", source, field)
                if "\0" in path or "/../" in path + "/":
                    raise _error(name, f"'{field}' path {path!r} may not contain '..'",
                                 source, field)
    network = table.get("network", "none")
    if network != "none" and (not isinstance(network, list) or not all(
            isinstance(h, str) and re.match(HOST, h) for h in network)):
        raise _error(name, "'network' is \"none\" or a list of host names (`pypi.org`, "
                         "`*.example.com`, optionally with `:port`)", source, "network")


def _builtin_tables() -> dict[str, Any]:
    try:  # the compiled parser, as the policy loader uses: about 3x faster
        import tomli as tomllib
    except ImportError:  # pragma: no cover - the same parser, pure Python
        import tomllib  # type: ignore[no-redef]

    with BUILTIN_FILE.open("rb") as handle:
        tables = tomllib.load(handle).get("sandbox", {})
    return dict(tables)


def resolve(name: str, own: dict[str, Any], source: str = "<policy>") -> Profile:
    """The profile `name`: the policy's own table (`own`) or a built-in one, with `extends`
    applied (a field the profile sets replaces the parent's). ProfileError if unknown."""
    builtin = _builtin_tables() if name in BUILTIN_NAMES or _reaches_builtin(name, own) else {}
    merged: dict[str, Any] = {}
    seen: list[str] = []
    current: str | None = name
    chain: list[dict[str, Any]] = []
    while current is not None:
        if current in seen:
            raise _error(name, f"'extends' forms a cycle: {' -> '.join([*seen, current])}",
                         source, "extends")
        seen.append(current)
        table = own.get(current, builtin.get(current))
        if table is None:
            known = sorted({*BUILTIN_NAMES, *own})
            raise ProfileError(f"unknown sandbox profile {current!r}", source=source,
                              hint=f"profiles: {', '.join(known)}")
        check_table(current, table, source)
        chain.append(table)
        current = table.get("extends")
    for table in reversed(chain):
        merged.update({k: v for k, v in table.items() if k != "extends"})
    network = merged.get("network", "none")
    hosts = tuple(h.lower() for h in network) if isinstance(network, list) else ()
    fields = {f: tuple(merged.get(f, ())) for f in LIST_FIELDS}
    profile = Profile(name=name, description=str(merged.get("description", "")),
                      hosts=hosts, hash="", **fields)
    return profile._replace(hash=profile_hash(profile.spec()))


def _reaches_builtin(name: str, own: dict[str, Any]) -> bool:
    """Whether `name`'s `extends` chain leaves the policy's own profiles."""
    seen: set[str] = set()
    while name in own and name not in seen:
        seen.add(name)
        parent = own[name].get("extends") if isinstance(own[name], dict) else None
        if not isinstance(parent, str):
            return False
        name = parent
    return name not in own


def known_names(own: dict[str, Any]) -> frozenset[str]:
    """Every profile a policy may name: the built-in ones and its own."""
    return frozenset({*BUILTIN_NAMES, *own})
