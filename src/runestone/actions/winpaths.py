"""Windows paths as policy sees them: one canonical, case-folded form per place.

A Windows session's tool calls name files as `d:\\proj\\src\\app.ts`, `C:/Users/me/.ssh`,
`\\\\server\\share\\x`, `%APPDATA%\\gh\\hosts.yml`, `$env:USERPROFILE\\.aws` or, in Git
Bash, `/c/Users/me`. Policy's globs, anchors and `is_within` work on `/`-separated paths
that start with `/`, so a Windows place gets a canonical form in that shape:

- a drive path `C:\\Users\\Me` is `/c:/users/me`;
- a UNC path `\\\\server\\share\\x` is `//server/share/x`;
- a device `\\\\.\\PhysicalDrive0` is `//./physicaldrive0`, and `NUL` is `/dev/null`.

Forms are lower case because NTFS compares names case-insensitively: `.ENV` is `.env`.
Windows also drops a trailing dot or space from a name (`.env.` opens `.env`) and reads
`name:stream` as a stream of `name`; the canonical form does the same, so no spelling
slips past a rule. Which rules apply is chosen by the action's own cwd (a Windows cwd
means Windows paths), never by the machine the runtime runs on: a Windows session's log
replays on Linux with the same answers. Everything here is pure string work (`ntpath`).
"""

from __future__ import annotations

import ntpath
import re

from runestone.lazy_pattern import lazy

_DRIVE_ABS = lazy(r"^[A-Za-z]:[\\/]")
_CANON_DRIVE = lazy(r"^/[a-z]:(?:/|$)")
_ENV_PERCENT = lazy(r"%([A-Za-z_][A-Za-z0-9_()]*)%")
_ENV_POWERSHELL = lazy(
    r"\$(?:\{env:([A-Za-z_][A-Za-z0-9_()]*)\}|env:([A-Za-z_][A-Za-z0-9_]*))", re.IGNORECASE)
_SHORT_NAME = lazy(r"^[^~. ]{1,6}~[0-9]{1,6}(?:\.[^.]{0,3})?$")
_DEVICES = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$",
                      *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))})
UNKNOWN_HOME = "C:\\Users\\%USERNAME%"


def is_windows_place(path: str | None) -> bool:
    """Does this cwd, project or home name a Windows place (`C:\\x`, `\\\\srv\\share`, or
    the canonical `/c:/x`, `//srv/share`)? A POSIX path never does."""
    if not path:
        return False
    if path[0] == "/" and path[1:2] != "/" and path[2:3] != ":":
        return False  # the common POSIX case, decided without a regex
    return bool(_DRIVE_ABS.match(path) or path in ("C:", "c:") or path.startswith("\\\\")
                or _CANON_DRIVE.match(path)
                or (path.startswith("//") and len(path) > 2 and path[2] != "/"))


def native(place: str) -> str:
    """A canonical form (or an already native path) as Windows writes it: `/c:/x` is
    `c:\\x`, `//srv/share` is `\\\\srv\\share`."""
    if _CANON_DRIVE.match(place):
        rest = place[3:] or "/"
        return place[1:3] + rest.replace("/", "\\")
    if place.startswith("//"):
        return place.replace("/", "\\")
    return place.replace("/", "\\") if is_windows_place(place) else place


def shown(form: str) -> str:
    """How a path is shown in a reason: Windows forms as Windows writes them."""
    return native(form) if is_windows_place(form) else form


def windows_env(home: str) -> dict[str, str]:
    """The usual values of Windows' environment variables for a user whose profile is
    `home` (native form). A machine may move them; without that machine, the defaults are
    what a static reading can know."""
    home = native(home)
    drive, rest = ntpath.splitdrive(home)
    return {
        "USERPROFILE": home, "HOME": home, "HOMEDRIVE": drive, "HOMEPATH": rest or "\\",
        "USERNAME": ntpath.basename(home),
        "APPDATA": home + "\\AppData\\Roaming", "LOCALAPPDATA": home + "\\AppData\\Local",
        "TEMP": home + "\\AppData\\Local\\Temp", "TMP": home + "\\AppData\\Local\\Temp",
        "ONEDRIVE": home + "\\OneDrive",
        "SYSTEMROOT": "C:\\Windows", "WINDIR": "C:\\Windows", "SYSTEMDRIVE": "C:",
        "PROGRAMFILES": "C:\\Program Files", "PROGRAMW6432": "C:\\Program Files",
        "PROGRAMFILES(X86)": "C:\\Program Files (x86)",
        "COMMONPROGRAMFILES": "C:\\Program Files\\Common Files",
        "PROGRAMDATA": "C:\\ProgramData", "ALLUSERSPROFILE": "C:\\ProgramData",
        "PUBLIC": "C:\\Users\\Public",
    }


def windows_home(*places: str | None) -> str:
    """The user's profile for a Windows action: the first Windows home given, else the
    `X:\\Users\\NAME` a cwd or project lies in, else a home that names no real user."""
    for place in places:
        if not is_windows_place(place):
            continue
        parts = native(place or "").split("\\")
        if len(parts) >= 3 and parts[1].lower() == "users" and parts[2] \
                and parts[2].lower() not in ("public", "default", "all users"):
            return "\\".join(parts[:3])
    return UNKNOWN_HOME


def _expand_env(text: str, env: dict[str, str]) -> str | None:
    """`%VAR%`, `$env:VAR`, `${env:VAR}`, `$HOME`, `~`: expanded; None for a variable whose
    value a static reading cannot know."""
    unknown = False

    def lookup(name: str) -> str:
        nonlocal unknown
        value = env.get(name.upper())
        if value is None:
            unknown = True
            return ""
        return value

    text = _ENV_PERCENT.sub(lambda m: lookup(m.group(1)), text)
    text = _ENV_POWERSHELL.sub(lambda m: lookup(m.group(1) or m.group(2)), text)
    for prefix in ("$HOME", "${HOME}"):
        if text == prefix or text.startswith((prefix + "\\", prefix + "/")):
            text = env["HOME"] + text[len(prefix):]
            break
    if text == "~" or text.startswith(("~\\", "~/")):
        text = env["HOME"] + text[1:]
    elif text.startswith("~") and len(text) > 1:
        # ~user: another profile beside this one.
        user = re.split(r"[\\/]", text[1:], maxsplit=1)
        base = ntpath.join(ntpath.dirname(env["HOME"]), user[0])
        text = base + ("\\" + user[1] if len(user) > 1 else "")
    return None if unknown else text


def _trim_segment(segment: str, last: bool) -> str | None:
    """A name as Windows opens it: its stream (`name:stream`) dropped, a single trailing
    dot dropped, and on the last name every trailing dot and space. None when trimming
    would turn a name into `.` or `..` (a spelling whose meaning is not worth guessing)."""
    if segment in ("", ".", ".."):
        return segment
    name = segment.split(":", 1)[0]
    if last:
        trimmed = name.rstrip(". ")
    else:
        trimmed = name[:-1] if name.endswith(".") and not name.endswith("..") else name
    if trimmed.strip(". ") == "" and trimmed not in ("", ".", ".."):
        return None
    if trimmed in (".", "..") and trimmed != segment:
        return None
    if trimmed == "" and name != "":
        return None
    return trimmed


def canonical(path: str) -> str | None:
    """The canonical form of an absolute Windows path (native or canonical), or None when
    it is not one: drive-relative (`C:x`) or a lone `\\\\server`."""
    text = path.replace("/", "\\")
    if _CANON_DRIVE.match(path):
        text = path[1:3] + (path[3:] or "\\").replace("/", "\\")
    lower = text.lower()
    if lower.startswith(("\\\\?\\unc\\", "\\\\.\\unc\\")):
        text = "\\\\" + text[8:]
    elif lower.startswith(("\\\\?\\", "\\\\.\\")):
        rest = text[4:]
        if re.match(r"^[A-Za-z]:$", rest) and lower.startswith("\\\\.\\"):
            return "//./" + rest.lower()  # `\\.\\C:` is the raw volume, not its root folder
        if re.match(r"^[A-Za-z]:(\\|$)", rest):
            text = rest if len(rest) > 2 else rest + "\\"
        else:
            device = rest.split("\\", 1)[0].lower()
            if device in ("registry", "psdrive", "psprovider"):
                return "//./" + rest.lower().replace("\\", "/").rstrip("/")
            return "//" + text[2] + "/" + device if device else None
    drive, tail = ntpath.splitdrive(text)
    share_root = drive.startswith("\\\\") and not tail
    if not drive or (not tail.startswith("\\") and not share_root):
        return None
    if drive.startswith("\\\\") and drive.count("\\") < 3:
        return None  # `\\server` with no share
    segments = tail.split("\\")
    kept: list[str] = []
    for index, segment in enumerate(segments):
        trimmed = _trim_segment(segment, last=index == len(segments) - 1)
        if trimmed is None:
            return None
        kept.append(trimmed)
    normal = ntpath.normpath(drive + "\\".join(kept)).lower()
    name = ntpath.basename(normal)
    if name in _DEVICES:
        return "/dev/null" if name == "nul" else "//./" + name
    if normal.startswith("\\\\"):
        return normal.replace("\\", "/").rstrip("/")
    return "/" + normal.replace("\\", "/").rstrip("/") if len(normal) > 3 else "/" + normal[:2]


def windows_forms(raw: str, cwd: str | None, home: str | None) -> tuple[tuple[str, ...], bool]:
    """Every canonical form `raw` may name on Windows, and whether it is a pattern.

    `cwd` and `home` are Windows places (native or canonical). A path rooted without a
    drive is read two ways, both kept: `/c/x` is `C:\\x` to Git Bash and `\\c\\x` on the
    current drive to PowerShell and cmd; `/tmp` is Git Bash's temporary directory. A deny
    rule fires on either reading, an allow rule must hold for both. An 8.3 short name
    (`PROGRA~1`) or a wildcard makes the form a pattern, since the real name is unknown.
    """
    home_native = native(home) if is_windows_place(home) else UNKNOWN_HOME
    env = windows_env(home_native)
    cwd_native = native(cwd) if cwd and is_windows_place(cwd) else None
    text = raw
    provider = _PROVIDER.match(text)
    if provider and provider.group(1).lower() == "filesystem":
        text = provider.group(2)
    elif not text.lower().startswith("file:"):
        other = _provider_form(text)
        if other is not None:
            return other, "*" in text or "?" in text
    if text.lower().startswith("file:"):
        body = text[5:].lstrip("/") if text[5:8] == "///" else text[5:]
        text = body if re.match(r"^[A-Za-z]:", body) else body.replace("/", "\\")
    expanded = _expand_env(text, env)
    if expanded is None:
        return (), False
    text = expanded
    if text in ("/dev/null", "/dev/stdin", "/dev/stdout", "/dev/stderr"):
        return (text,), False
    anchor = cwd_native or home_native
    drive = ntpath.splitdrive(anchor)[0]
    candidates: list[str] = []
    rooted = text[:1] in ("/", "\\") and text[:2] not in ("//", "\\\\")
    if is_windows_place(text):
        candidates.append(text)  # `C:\\x`, `\\\\srv\\share`, or already canonical
    elif rooted:
        msys = re.match(r"^/([A-Za-z])(/.*)?$", text)
        if msys:
            candidates.append(msys.group(1) + ":" + (msys.group(2) or "\\"))
        elif text == "/tmp" or text.startswith("/tmp/"):
            candidates.append(env["TEMP"] + text[4:])
        candidates.append(drive + text)
    elif re.match(r"^[A-Za-z]:(?![\\/])", text):
        # `D:x`: relative to the current directory of drive D, known only for the cwd's drive.
        if cwd_native is None or text[:2].lower() != drive.lower():
            return (), False
        candidates.append(ntpath.join(cwd_native, text[2:]))
    else:
        if cwd_native is None:
            return (), False
        candidates.append(ntpath.join(cwd_native, text))
    forms: list[str] = []
    pattern = False
    for candidate in candidates:
        form = canonical(candidate)
        if form is None:
            return (), False
        segments = form.split("/")
        if any(_SHORT_NAME.match(s) for s in segments):
            pattern = True
            form = "/".join(_short_name_glob(s) for s in segments)
        if any(c in form for c in "*?"):
            pattern = True
        if form not in forms:
            forms.append(form)
    return tuple(forms), pattern


_PROVIDER = lazy(r"^(?:Microsoft\.PowerShell\.Core\\)?([A-Za-z]+)::(.*)$", re.IGNORECASE)
_PSDRIVE = lazy(r"^([A-Za-z][A-Za-z0-9_]+):(?:[\\/](.*))?$")
_HIVES = {"hkcu": "hkcu", "hkey_current_user": "hkcu", "hklm": "hklm",
          "hkey_local_machine": "hklm", "hkcr": "hkcr", "hkey_classes_root": "hkcr",
          "hku": "hku", "hkey_users": "hku", "hkcc": "hkcc", "hkey_current_config": "hkcc"}
REGISTRY = "//./registry"


def registry_form(key: str) -> str | None:
    """The canonical form of a registry key however it is written: `HKCU\\Software\\x`
    (reg.exe), `HKCU:\\Software\\x` (PowerShell's drive), `Registry::HKEY_CURRENT_USER\\x`.
    Policy globs name keys the same way (`HKCU:\\Software\\...\\Run\\**`)."""
    text = key.replace("/", "\\")
    provider = _PROVIDER.match(text)
    if provider and provider.group(1).lower() == "registry":
        text = provider.group(2)
    hive, _, rest = text.partition("\\")
    hive = _HIVES.get(hive.rstrip(":").lower())
    if hive is None:
        return None
    parts = [p for p in rest.lower().split("\\") if p not in ("", ".")]
    return "/".join([REGISTRY, hive, *parts])


def _provider_form(text: str) -> tuple[str, ...] | None:
    """A PowerShell provider path, or None for a file path: `HKCU:\\x` and `Registry::...`
    are registry keys, `Env:`, `Cert:`, `Function:`... another drive's items (never files
    of the project), `FileSystem::C:\\x` is the file `C:\\x`."""
    provider = _PROVIDER.match(text)
    if provider:
        kind = provider.group(1).lower()
        if kind == "filesystem":
            return None
        if kind == "registry":
            form = registry_form(text)
            return (form,) if form else (REGISTRY + "/?",)
        return ("//./psprovider/" + kind + "/" + provider.group(2).lower().replace("\\", "/"),)
    drive = _PSDRIVE.match(text)
    if drive:
        form = registry_form(text)
        if form:
            return (form,)
        rest = (drive.group(2) or "").lower().replace("\\", "/")
        return ("//./psdrive/" + drive.group(1).lower() + ("/" + rest if rest else ""),)
    return None


def _short_name_glob(segment: str) -> str:
    """`progra~1` may be any name starting `progra`: `progra*`; `creden~1.jso` is `creden*.jso*`."""
    if not _SHORT_NAME.match(segment):
        return segment
    stem, _, ext = segment.partition(".")
    return stem.split("~", 1)[0] + "*" + ("." + ext + "*" if ext else "")


def windows_pattern(pattern: str, project: str, home: str) -> str:
    """A rule's path glob for a Windows project, in canonical form: `{project}/**`,
    `~\\.ssh\\id_*`, `%APPDATA%\\gh\\**`, `C:\\Windows\\**`, `?:\\Users\\*\\.ssh\\**`. Globs
    are lower case since Windows names are compared without case."""
    env = windows_env(home)
    text = pattern
    other = _provider_form(pattern)
    if other is not None:
        return other[0]
    if text.startswith("{project}"):
        text = native(project) + text[len("{project}"):]
    elif text.startswith("{home}"):
        text = native(home) + text[len("{home}"):]
    elif text.startswith("./"):
        text = native(project) + text[1:]
    expanded = _expand_env(text, env)
    text = (expanded if expanded is not None else text).replace("\\", "/")
    if re.match(r"^[A-Za-z?*]:(/|$)", text):
        text = "/" + text
    return text.lower()


def is_windows_pattern(pattern: str) -> bool:
    """Is a rule glob written for Windows (a drive, a UNC share, `%VAR%`, `$env:`, or `\\`)?"""
    if "\\" in pattern:
        return True
    if ":" not in pattern and not pattern.startswith("%"):
        # A drive, a PowerShell provider or drive and `$env:` all hold a colon, and `%VAR%`
        # starts the glob: a POSIX glob (`~/.ssh/**`) is told apart without a regex.
        return False
    return bool(re.match(r"^[A-Za-z?*]:[\\/]", pattern) or _provider_form(pattern) is not None
                or _ENV_PERCENT.match(pattern) or pattern.lower().startswith("$env:"))
