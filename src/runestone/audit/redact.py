"""Redaction: secret values are replaced by a keyed hash before anything is written.

Like OPA's decision-log masking, this is its own step with its own tests, applied to every
entry before it reaches the disk. A secret becomes `[REDACTED:<kind>:<hmac>]` where the
HMAC-SHA256 (first 16 hex digits) uses a key that never leaves the machine: equal secrets
stay correlatable across entries, but a leaked log does not reveal them, and without the key
a guess cannot be confirmed.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

from runestone.digest import sha256
from runestone.lazy_pattern import lazy


def _source(pattern: str, flags: int = 0) -> tuple[str, int]:
    """A pattern kept as text: compiled only when a string may hold a secret (below)."""
    return pattern, flags


_QUOTED = r"\"[^\"]{{{min},}}\"|'[^']{{{min},}}'"  # a value in double or single quotes
_VALUE = rf"({_QUOTED.format(min=1)}|[^\s'\"-]\S*)"  # an option's value, attached or not


def _credential(separator: str) -> str:
    """`user<separator>SECRET`, quoted or not, the whole of it the secret."""
    return (rf"(\"[^\"]*{separator}[^\"]*\"|'[^']*{separator}[^']*'"
            rf"|[^\s'\"{separator}]*{separator}\S+)")


def _after_program(programs: str, option: str, value: str) -> tuple[str, int]:
    """`option` then `value` (the group holding the secret) after one of `programs`, within
    the same command: no `;`, `&`, `|` or line break between (within 500 characters, so a
    string of many program names costs a bounded search from each)."""
    return _source(rf"\b(?:{programs})\b[^\n;&|]{{0,500}}?\s{option}{value}")

# What the assignment pattern looks for in a name (its guard too).
_KEYWORDS = r"secret|token|passwd|password|passphrase|pwd|api[_-]?key|apikey|" \
            r"private[_-]?key|access[_-]?key|credential|auth"
# The value of `name=value` or `name: value` (quoted, ANSI-C quoted as `$'...'`, or up to a
# space or separator); the name may be quoted too, as JSON's are (`{"password":"..."}` in a
# command's body).
_ASSIGNED = r"[\"']?\s*[=:]\s*(\"[^\"]{4,}\"|\$?'[^']{4,}'|[^\s'\";,&]{4,})"

# (kind, (pattern, flags), group holding the secret; 0 = the whole match)
_SOURCES: list[tuple[str, tuple[str, int], int]] = [
    ("private-key", _source(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)", re.S), 0),
    ("aws-access-key", _source(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"), 0),
    ("github-token",
     _source(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"), 0),
    ("gitlab-token", _source(r"\bglpat-[A-Za-z0-9_\-]{20,}\b"), 0),
    ("slack-token", _source(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"), 0),
    ("slack-webhook", _source(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"), 0),
    ("anthropic-key", _source(r"\bsk-ant-[A-Za-z0-9_\-]{20,}\b"), 0),
    ("openai-key", _source(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}\b"), 0),
    ("stripe-key", _source(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b"), 0),
    ("google-api-key", _source(r"\bAIza[0-9A-Za-z_\-]{35}\b"), 0),
    ("npm-token", _source(r"\bnpm_[A-Za-z0-9]{36}\b"), 0),
    ("pypi-token", _source(r"\bpypi-[A-Za-z0-9_\-]{50,}\b"), 0),
    ("sendgrid-key", _source(r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}\b"), 0),
    ("twilio-key", _source(r"\bSK[0-9a-fA-F]{32}\b"), 0),
    ("jwt", _source(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"), 0),
    ("authorization", _source(
        r"(?i)\b(?:authorization|proxy-authorization)\s*[:=]\s*"
        r"(?:(?:bearer|basic|token|digest|negotiate)\s+)?([^\s'\";,]+)"), 1),
    ("bearer", _source(r"(?i)\bbearer\s+([A-Za-z0-9\-._~+/]{16,}=*)"), 1),
    ("url-password", _source(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]+:([^\s/@]+)@"), 1),
    ("assignment", _source(rf"(?i)\b[A-Z0-9_.-]*(?:{_KEYWORDS})[A-Z0-9_.-]*{_ASSIGNED}"), 1),
    # A longer name ending in `pass`: `SSHPASS` (which `sshpass -e` reads), `DB_PASS`,
    # `SMTP_PASS_FILE`, `--db-pass`; not a word going on (`passing`), nor one of its own (a
    # test's `PASS: test_login`). Its own pattern, so that only strings holding `pass` are
    # searched for it: folded into the one above, the look-behind slowed the redaction of
    # the audited batch's entries by about 5%.
    ("pass-assignment", _source(
        rf"(?i)\b[A-Z0-9_.-]*[A-Z0-9_.-]pass(?![A-Z])[A-Z0-9_.-]*{_ASSIGNED}"), 1),
    # An option's value, quoted or not (the quotes go with it): long options that name a
    # secret whatever the program. (`-p` is not one of them: most programs read it as
    # something else, `mkdir -p`, `ssh -p PORT`, `docker run -p PORTS`, `git log -p`. Those
    # that read it as a password are listed below.)
    ("cli-password", _source(
        r"(?:^|\s)(?:--password|--passwd|--passphrase|--token|--api-key|--secret)(?:=|\s+)"
        rf"(?!-)({_QUOTED.format(min=4)}|[^\s'\"]{{4,}})"), 1),
    # Options that hold a password only for the programs that read them so: the MySQL and
    # MariaDB clients read `-pSECRET` (attached; `-p SECRET` prompts, and SECRET is the
    # database), curl `-u user:SECRET`, redis-cli `-a SECRET`, zip and 7-Zip `-P SECRET` and
    # `-pSECRET`, the OpenLDAP tools `-w SECRET`, Samba `-U user%SECRET`, lftp
    # `-u user,SECRET`, SQL Server's command-line tools `-P SECRET`.
    ("mysql-password", _after_program(r"mysql[a-z]*|mariadb[a-z-]*", "-p", _VALUE), 1),
    ("curl-user", _after_program("curl", r"(?:-[uU]\s*|--(?:proxy-)?user(?:=|\s+))",
                                 _credential(":")), 1),
    ("redis-password", _after_program("redis-cli", r"(?:-a\s*|--pass(?:=|\s+))", _VALUE), 1),
    ("zip-password", _after_program("zip|unzip|zipcloak", r"-P\s*", _VALUE), 1),
    ("7z-password", _after_program("7z[ar]?", "-p", _VALUE), 1),
    ("ldap-password", _after_program(r"ldap[a-z]*", r"-w\s*", _VALUE), 1),
    ("samba-user", _after_program("smbclient|smbget|smbcacls|rpcclient",
                                  r"(?:-U\s*|--user(?:=|\s+))", _credential("%")), 1),
    ("lftp-user", _after_program("lftp", r"-u\s*", _credential(",")), 1),
    ("sqlcmd-password", _after_program("sqlcmd|bcp|osql", r"-P\s*", _VALUE), 1),
    # `-p SECRET` (or `-pSECRET`) where the program reads it as a password: the MongoDB
    # shell and tools, cqlsh, rabbitmqadmin, Sysinternals' PsExec, the NcFTP clients,
    # rdesktop, hydra, RAR's `-pSECRET`, and the `login` subcommands of registry and cloud
    # CLIs (`docker login -u NAME -p SECRET`, `az login`, `oc login`, `cf login`).
    ("dash-p-password", _after_program(
        r"mongo[a-z]*|cqlsh|rabbitmqadmin|(?:psexec|PsExec|PSEXEC)(?:64)?"
        r"|ncftp[a-z]*|rdesktop|hydra|(?:un)?rar|login", r"-p\s*", _VALUE), 1),
    # sshpass reads `-p SECRET` among its own options, before the command it runs: in
    # `sshpass -e ssh -p 2222 host` the `-p` is ssh's port (`-f`, `-d` and `-P` take a
    # value, `-e`, `-v`, `-h` and `-V` none).
    ("sshpass-password", _source(
        rf"\bsshpass(?:\s+(?:-[evhV]+|-[fdP]\s*\S+))*\s+-p\s*{_VALUE}"), 1),
    # Java's keytool and jarsigner: `-storepass SECRET`, `-keypass SECRET` and their `src`
    # and `dest` forms (`-storepass:env NAME` and `:file` name where it is instead).
    ("java-keystore-password", _source(
        rf"(?:^|\s)-(?:src|dest)?(?:store|key)pass\s+{_VALUE}"), 1),
    # Windows' `net user NAME SECRET` (sets it) and `net use [X:] \\host\share SECRET`
    # (`*` prompts; options start with `/`); cmd reads them in any case.
    ("windows-net-password", _source(
        r"(?i)\bnet(?:\.exe)?\s+(?:user\s+(?:\"[^\"]+\"|[^\s/\"]\S*)"
        r"|use\s+(?:(?:[a-z]:|\*)\s+)?(?:\"\\\\[^\"]+\"|\\\\\S+))"
        r"\s+(\"[^\"]+\"|'[^']+'|[^\s/*\"'][^\s]*)"), 1),
    # OpenSSL's pass phrase arguments give a password as `pass:SECRET` (`env:` and `file:`
    # name where it is instead).
    ("openssl-pass", _source(
        r"(?:^|\s)-pass(?:in|out)?\s+(\"pass:[^\"]*\"|'pass:[^']*'|pass:\S+)"), 1),
]

# The kinds whose value may be a shell variable's name (`--token "$TOKEN"`) instead.
_NAMES_VARIABLES = frozenset({"assignment", "pass-assignment", "cli-password",
                              "mysql-password", "curl-user", "redis-password", "zip-password",
                              "7z-password", "dash-p-password", "sshpass-password",
                              "ldap-password", "samba-user", "lftp-user", "sqlcmd-password",
                              "java-keystore-password", "windows-net-password"})

# The words of a member's name that say its value is a secret (`password`, `db_pass`,
# `apiKey`, `client_secret`, `X-Auth-Token`), and the endings of a name run together
# (`sshpass`, `dbpassword`, `apitoken`). Names are split at `_`, `-`, `.`, spaces and
# camelCase humps; `author`, `max_tokens` and `public_key` are not secrets' names.
_SECRET_WORDS = frozenset({"secret", "secrets", "token", "password", "passwords", "passwd",
                           "passphrase", "pass", "pwd", "apikey", "credential",
                           "credentials", "auth", "authorization"})
_SECRET_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key")})
_SECRET_ENDINGS = ("pass", "passwd", "password", "passphrase", "token", "secret", "apikey")
_NAME_WORDS = lazy(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
# Names found not to name a secret: most names, asked about for every string member, so
# the walk looks them up in place (bounded, emptied when full).
_PLAIN_NAMES: set[str] = set()


def names_secret(name: str) -> bool:
    """Whether a member called `name` holds a secret (its words, as above)."""
    if name in _PLAIN_NAMES:
        return False
    words = [word.lower() for word in _NAME_WORDS.findall(name)]
    if any(word in _SECRET_WORDS or word.endswith(_SECRET_ENDINGS) for word in words) \
            or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)):
        return True
    if len(_PLAIN_NAMES) >= 4096:
        _PLAIN_NAMES.clear()
    _PLAIN_NAMES.add(name)
    return False


# A shell expansion: a variable (`$TOKEN`, `${TOKEN}`) or a command's output (`$(gh auth
# token)`, to the end of the value: an unquoted one stops at its first space).
_EXPANSION = lazy(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\}|\(.*)")


def names_variables(value: str) -> bool:
    """Whether `value`, as written (its quotes included), holds no secret but only names
    where one is: shell expansions, bare or in double quotes, joined by nothing but the
    separators of a credential or an address (`$TOKEN`, `"${USER}:${PASS}"`,
    `$(cat key.txt)`). Not in single quotes, where `$` is literal (`'$3cr3t'`), nor ANSI-C
    quoting (`$'...'`), nor with characters of its own beside the names (`$USER:hunter2`,
    `$3cr3t`, `$hunter2!`)."""
    if "'" in value:
        return False
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    rest, expansions = _EXPANSION.subn("", value)
    return expansions > 0 and not rest.strip(":@/,.")


# Types whose values hold no string (exactly these: a subclass may be anything).
_LEAVES = frozenset({int, float, bool, type(None)})

_MARK = lazy(r"\[REDACTED:[a-z-]+:[0-9a-f]{16}\]")


# Literals of which every pattern above needs at least one in any string it matches (a
# property test checks this for each pattern): `=` or `:` for assignments, headers and URLs,
# `--` or `-p` for options and PEM blocks, and each token format's own prefix. A string
# with none of them holds no secret, and most strings of an entry (ids, hashes, tool names,
# keys, short commands) have none: those skip the regexes, and a hook deciding such a call
# never compiles them (all of them cost a cold hook ~2 ms to compile).
_NEEDED = ("=", ":", "--", "-p", "sk-", "eyJ", "SK", "SG.", "pypi-", "npm_", "AIza", "_live_",
           "_test_", "xox", "glpat-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
           "AKIA", "ASIA", "ABIA", "ACCA", "redis-cli", "zip", "7z", "ldap", "smb",
           "rpcclient", "lftp", "sqlcmd", "bcp", "osql", "storepass", "keypass")


class IgnoringCase(NamedTuple):
    """The guard of a pattern matched ignoring case.

    `(?i)` on ASCII text is the same as comparing its lowered text with lowercase literals,
    so an ASCII string (most of an entry) is lowered once and searched for `literals`, then
    for `near`: a part of every match, written for the lowered text, that also needs what
    follows the keyword (`token=`, not `token` alone). Each regex searched so costs a
    fraction of the `(?i)` alternation over the original, and a string that names a keyword
    in passing (a reason that says "credentials") no longer runs the pattern itself, whose
    leading `[A-Z0-9_.-]*` makes it the slowest of all. Other strings run `unicode`, the
    alternation under the pattern's own flag, so `re` decides case exactly as the pattern
    does (`ſecret=...` matches `(?i)secret`, though its lower() holds no `secret`)."""

    literals: tuple[str, ...]
    near: str
    unicode: str


# For each pattern, what any string it matches holds: literals (case-sensitive), or, for the
# patterns matched ignoring case, an `IgnoringCase`. A pattern runs only on a string its
# guard finds; a property test checks each guard against strings generated from its pattern.
_GUARDS: dict[str, tuple[str, ...] | IgnoringCase] = {
    "private-key": ("PRIVATE KEY",),
    "aws-access-key": ("AKIA", "ASIA", "ABIA", "ACCA"),
    "github-token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab-token": ("glpat-",),
    "slack-token": ("xox",),
    "slack-webhook": ("https://hooks.slack.com/services/",),
    "anthropic-key": ("sk-ant-",),
    "openai-key": ("sk-",),
    "stripe-key": ("_live_", "_test_"),
    "google-api-key": ("AIza",),
    "npm-token": ("npm_",),
    "pypi-token": ("pypi-",),
    "sendgrid-key": ("SG.",),
    "twilio-key": ("SK",),
    "jwt": ("eyJ",),
    "authorization": IgnoringCase(("authorization",), r"authorization\s*[:=]",
                                  "(?i)authorization"),
    "bearer": IgnoringCase(("bearer",), r"bearer\s", "(?i)bearer"),
    "url-password": ("://",),
    "assignment": IgnoringCase(
        ("secret", "token", "passwd", "password", "passphrase", "pwd", "key", "credential",
         "auth"),
        rf"(?:{_KEYWORDS})[a-z0-9_.-]*[\"']?\s*[=:]", f"(?i){_KEYWORDS}"),
    "pass-assignment": IgnoringCase(
        ("pass",), r"[a-z0-9_.-]pass(?![a-z])[a-z0-9_.-]*[\"']?\s*[=:]", "(?i)pass"),
    "cli-password": ("--pass", "--token", "--api-key", "--secret"),
    "openssl-pass": ("pass:",),
    "zip-password": ("zip",),
    "7z-password": ("7z",),
    "ldap-password": ("ldap",),
    "samba-user": ("smb", "rpcclient"),
    "lftp-user": ("lftp",),
    "sqlcmd-password": ("sqlcmd", "bcp", "osql"),
    "sshpass-password": ("sshpass",),
    "dash-p-password": ("mongo", "cqlsh", "rabbitmqadmin", "psexec", "PsExec",
                        "PSEXEC", "ncftp", "rdesktop", "hydra", "rar", "login"),
    "mysql-password": ("mysql", "mariadb"),
    "curl-user": ("curl",),
    "redis-password": ("redis-cli",),
    "java-keystore-password": ("storepass", "keypass"),
    "windows-net-password": IgnoringCase(("net",), r"net(?:\.exe)?\s+use",
                                         r"(?i)net(?:\.exe)?\s+use"),
}


def may_hold_secret(value: str) -> bool:
    """False only when no pattern can match `value` (cheap substring tests: `in` on a short
    string is faster than one regex search of the same literals)."""
    if any(literal in value for literal in _NEEDED):
        return True
    lowered = value.lower()
    return "bearer" in lowered or "net" in lowered  # the patterns matched ignoring case


@functools.cache
def guards() -> dict[str, Callable[[str], bool]]:
    """kind -> a test true of every string the kind's pattern matches, one kind at a time:
    the reference that `guarded`, asking them all at once, must agree with (tests compare
    the two)."""
    found: dict[str, Callable[[str], bool]] = {}
    for kind, guard in _GUARDS.items():
        if isinstance(guard, IgnoringCase):
            found[kind] = lambda value, guard=guard: _holds_ignoring_case(
                guard, value, value.lower() if value.isascii() else None)
        else:
            found[kind] = lambda value, literals=guard: any(lit in value for lit in literals)
    return found


def _literal_table() -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Each literal of the case-sensitive guards once, with the patterns (their indexes in
    `_SOURCES`) whose guard names it."""
    table: dict[str, list[int]] = {}
    for index, (kind, _, _) in enumerate(_SOURCES):
        guard = _GUARDS[kind]
        if not isinstance(guard, IgnoringCase):
            for literal in guard:
                table.setdefault(literal, []).append(index)
    return tuple((literal, tuple(indexes)) for literal, indexes in table.items())


_LITERAL_TABLE = _literal_table()
_CASELESS = tuple((index, _GUARDS[kind]) for index, (kind, _, _) in enumerate(_SOURCES)
                  if isinstance(_GUARDS[kind], IgnoringCase))


def guarded(value: str) -> list[int]:
    """The indexes, in order, of the patterns whose guard holds for `value`: what asking
    `guards()` of every kind gives, with each literal searched for once and the text lowered
    once, instead of a call per kind."""
    found = {index for literal, indexes in _LITERAL_TABLE if literal in value
             for index in indexes}
    lowered = value.lower() if value.isascii() else None
    found.update(index for index, guard in _CASELESS
                 if _holds_ignoring_case(guard, value, lowered))
    return sorted(found)


def _holds_ignoring_case(guard: IgnoringCase, value: str, lowered: str | None) -> bool:
    """`guard` on `value`, given `value.lower()` when `value` is ASCII (else None)."""
    if lowered is None:
        return _caseless_pattern(guard.unicode).search(value) is not None
    return any(lit in lowered for lit in guard.literals) and \
        _caseless_pattern(guard.near).search(lowered) is not None


@functools.cache
def _caseless_pattern(source: str) -> re.Pattern[str]:
    """Compiled when first needed: a hook's strings are ASCII, most without the literals."""
    return re.compile(source)


@functools.cache
def _compiled(index: int) -> re.Pattern[str]:
    """One pattern, compiled the first time a string needs it (a hook rarely needs any)."""
    return re.compile(*_SOURCES[index][1])


def patterns() -> tuple[tuple[str, re.Pattern[str], int], ...]:
    """(kind, compiled pattern, group) for every secret shape."""
    return tuple((kind, _compiled(i), group) for i, (kind, _, group) in enumerate(_SOURCES))


# The clean strings a redactor remembers: at most this many, this many characters all
# told, none longer than _CLEAN_LENGTH. A decision writes its command three times (the
# request's input and summary, the decision's summary), so a command is tested once, not
# three times: commands are analysed up to 10,000 characters. Longer strings (a Write's
# whole file, say) are tested each time and never kept.
_CLEAN_LIMIT = 8192
_CLEAN_CHARACTERS = 1 << 20
_CLEAN_LENGTH = 16_384


class Redactor:
    """Replaces secret values in strings (and nested JSON values) by keyed hashes."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the redaction key must be at least 16 bytes")
        self._key = key
        # Strings seen to hold no secret (field names, decisions, rule ids, repeated reasons):
        # looked up instead of tested again. Only clean strings are kept, so no secret stays
        # in memory longer because of it; bounded, emptied when full.
        self._clean: set[str] = set()
        # Their characters all told. Threads may share a redactor (the approvals service's):
        # a lost update only moves the next emptying, and the count of strings bounds it too.
        self._clean_characters = 0

    def token(self, kind: str, secret: str) -> str:
        import hmac  # here: it loads OpenSSL (~2 ms), which a call holding no secret never needs

        digest = hmac.new(self._key, secret.encode("utf-8", "surrogatepass"),
                          sha256).hexdigest()
        return f"[REDACTED:{kind}:{digest[:16]}]"

    def text(self, value: str) -> str:
        """Every pattern in turn, each only where its guard finds what it needs (checked on
        the text as the patterns before it left it): the result is what running every
        substitution gives, at the cost of a few substring searches for most strings."""
        if value in self._clean:
            return value
        original = value
        if may_hold_secret(value):
            value = self._substitute(value)
        if value is original and len(value) <= _CLEAN_LENGTH:
            if len(self._clean) >= _CLEAN_LIMIT \
                    or self._clean_characters + len(value) > _CLEAN_CHARACTERS:
                self._clean.clear()
                self._clean_characters = 0
            self._clean.add(value)
            self._clean_characters += len(value)
        return value

    def _substitute(self, value: str) -> str:
        """Each pattern whose guard holds, in order. A substitution that changes the text
        has the guards of the patterns after it asked again, of the text as it now is."""
        due = guarded(value)
        while due:
            index = due.pop(0)
            kind, _source, group = _SOURCES[index]
            changed = _compiled(index).sub(self._replacer(kind, group), value)
            if changed != value:
                value = changed
                due = [later for later in guarded(value) if later > index]
        return value

    def _replacer(self, kind: str, group: int) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            secret = match.group(group)
            if not secret or _MARK.fullmatch(secret) or secret.startswith("[REDACTED:"):
                return match.group(0)
            if kind in _NAMES_VARIABLES and names_variables(secret):
                return match.group(0)  # `TOKEN=$TOKEN` names a variable, it holds no secret
            start, end = match.span(group)
            whole_start = match.start(0)
            prefix = match.group(0)[: start - whole_start]
            suffix = match.group(0)[end - whole_start:]
            return prefix + self.token(kind, secret) + suffix

        return replace

    def value(self, value: Any) -> Any:
        """Redact every string inside a JSON value; keys too when they carry secrets."""
        kind = type(value)
        if kind is dict:
            return self._object(value)
        if kind is str:
            return value if value in self._clean else self.text(value)
        if kind in _LEAVES:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):  # a tuple is written as a list: redacted too
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return self._object(value)
        return value

    def _object(self, value: dict[Any, Any]) -> dict[str, Any]:
        """`value` for an object, its keys and plain members handled here: an entry is an
        object of a dozen members, most of them strings already known to be clean (field
        names, tool names, repeated commands), and a call per member was most of the walk.

        A member whose name says it holds a secret (`{"password": "..."}`, an MCP tool's
        `api_key` argument) has its string value redacted whatever its shape, unless it
        only names a variable (`$TOKEN`: `names_variables`)."""
        clean, plain = self._clean, _PLAIN_NAMES
        out = {}
        for key, member in value.items():
            name = key if type(key) is str else str(key)
            key = name if name in clean else self.text(name)
            kind = type(member)
            if kind is str:
                if name not in plain and member and names_secret(name) \
                        and not names_variables(member):
                    member = self.token("named-secret", member)
                elif member not in clean:
                    member = self.text(member)
            elif kind not in _LEAVES:
                member = self.value(member)
            out[key] = member
        return out
