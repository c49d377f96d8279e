"""Command names as PowerShell resolves them: built-in aliases, cmdlet spelling, native programs.

PowerShell looks a command name up case-insensitively: an alias first (`rm` is
`Remove-Item`, `%` is `ForEach-Object`), then a function or cmdlet, then a program on the
path (`git`, `git.exe`, `npm.cmd`). The aliases below are the ones Windows PowerShell 5.1
and PowerShell 7 define on Windows (`Get-Alias`). A few differ between the two versions
(`curl` and `wget` are `Invoke-WebRequest` in 5.1 and the real programs in 7; `sc` is
`Set-Content` in 5.1 and sc.exe in 7): which one runs depends on the host, so those names
are reported as not understood rather than guessed.
"""

from __future__ import annotations

import re

# alias -> cmdlet, for the aliases both Windows PowerShell 5.1 and PowerShell 7 define.
# `mkdir`/`md` and `help`/`man` are built-in functions over New-Item and Get-Help.
ALIASES: dict[str, str] = {
    "%": "ForEach-Object", "?": "Where-Object", "foreach": "ForEach-Object",
    "where": "Where-Object", "ac": "Add-Content", "cat": "Get-Content", "gc": "Get-Content",
    "type": "Get-Content", "cd": "Set-Location", "chdir": "Set-Location",
    "sl": "Set-Location", "clc": "Clear-Content", "clear": "Clear-Host", "cls": "Clear-Host",
    "cli": "Clear-Item", "clp": "Clear-ItemProperty", "clv": "Clear-Variable",
    "compare": "Compare-Object", "copy": "Copy-Item", "cp": "Copy-Item", "cpi": "Copy-Item",
    "cpp": "Copy-ItemProperty", "cvpa": "Convert-Path", "del": "Remove-Item",
    "erase": "Remove-Item", "rd": "Remove-Item", "ri": "Remove-Item", "rm": "Remove-Item",
    "rmdir": "Remove-Item", "dir": "Get-ChildItem", "gci": "Get-ChildItem",
    "ls": "Get-ChildItem", "echo": "Write-Output", "write": "Write-Output",
    "epal": "Export-Alias", "epcsv": "Export-Csv", "fc": "Format-Custom",
    "fl": "Format-List", "ft": "Format-Table", "fw": "Format-Wide", "gal": "Get-Alias",
    "gcm": "Get-Command", "gdr": "Get-PSDrive", "ghy": "Get-History", "h": "Get-History",
    "history": "Get-History", "gi": "Get-Item", "gl": "Get-Location", "pwd": "Get-Location",
    "gm": "Get-Member", "gp": "Get-ItemProperty", "gps": "Get-Process", "ps": "Get-Process",
    "group": "Group-Object", "gsv": "Get-Service", "gu": "Get-Unique", "gv": "Get-Variable",
    "iex": "Invoke-Expression", "ihy": "Invoke-History", "r": "Invoke-History",
    "ii": "Invoke-Item", "ipcsv": "Import-Csv", "irm": "Invoke-RestMethod",
    "iwr": "Invoke-WebRequest", "kill": "Stop-Process", "spps": "Stop-Process",
    "md": "New-Item", "mkdir": "New-Item", "help": "Get-Help", "measure": "Measure-Object",
    "mi": "Move-Item", "move": "Move-Item",
    "mv": "Move-Item", "mp": "Move-ItemProperty", "ndr": "New-PSDrive", "ni": "New-Item",
    "nv": "New-Variable", "oh": "Out-Host", "popd": "Pop-Location",
    "pushd": "Push-Location", "rdr": "Remove-PSDrive", "ren": "Rename-Item",
    "rni": "Rename-Item", "rnp": "Rename-ItemProperty", "rp": "Remove-ItemProperty",
    "rv": "Remove-Variable", "rvpa": "Resolve-Path", "sal": "Set-Alias",
    "saps": "Start-Process", "start": "Start-Process", "sasv": "Start-Service",
    "select": "Select-Object", "sls": "Select-String", "si": "Set-Item",
    "sleep": "Start-Sleep", "sort": "Sort-Object", "sp": "Set-ItemProperty",
    "spsv": "Stop-Service", "sv": "Set-Variable", "set": "Set-Variable", "tee": "Tee-Object",
    "icm": "Invoke-Command", "ipmo": "Import-Module", "gmo": "Get-Module",
    "sajb": "Start-Job", "gjb": "Get-Job", "rcjb": "Receive-Job", "man": "Get-Help",
    "gcb": "Get-Clipboard", "scb": "Set-Clipboard", "gin": "Get-ComputerInfo",
    "gtz": "Get-TimeZone", "stz": "Set-TimeZone", "ogv": "Out-GridView", "shcm": "Show-Command",
    "iwmi": "Invoke-WmiMethod", "gwmi": "Get-WmiObject", "rwmi": "Remove-WmiObject",
    "swmi": "Set-WmiInstance", "gcim": "Get-CimInstance", "icim": "Invoke-CimMethod",
    "rcim": "Remove-CimInstance", "scim": "Set-CimInstance", "ncim": "New-CimInstance",
    "gerr": "Get-Error", "nal": "New-Alias", "ipal": "Import-Alias",
    "etsn": "Enter-PSSession", "exsn": "Exit-PSSession", "nsn": "New-PSSession",
    "gsn": "Get-PSSession", "rsn": "Remove-PSSession", "dbp": "Disable-PSBreakpoint",
}

# Names whose meaning depends on the PowerShell version: not guessed.
VERSION_DEPENDENT: dict[str, str] = {
    "curl": "Invoke-WebRequest in Windows PowerShell 5.1, curl.exe in PowerShell 7",
    "wget": "Invoke-WebRequest in Windows PowerShell 5.1, a wget program in PowerShell 7",
    "sc": "Set-Content in Windows PowerShell 5.1, sc.exe (service control) in PowerShell 7",
    "diff": "Compare-Object in Windows PowerShell 5.1, a diff program in PowerShell 7",
    "ise": "the ISE in Windows PowerShell 5.1, nothing in PowerShell 7",
}

# Program file extensions Windows runs by name (PATHEXT): `git.exe` is `git`.
_PROGRAM_SUFFIX = re.compile(r"\.(exe|com|cmd|bat)$", re.IGNORECASE)
_VERB_NOUN = re.compile(r"^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")
# Cmdlets and built-in functions whose spelling the analyzer canonicalises (PowerShell
# compares names without case, the catalogue's table names are spelled as Microsoft does).
_CMDLETS = {name.lower(): name for name in set(ALIASES.values())}
_CMDLETS.update({name.lower(): name for name in (
    "Test-Path", "Get-Content", "Set-Content", "Add-Content", "Out-File", "Out-Null",
    "Out-String", "Out-Host", "New-Item", "Get-Item", "Copy-Item", "Move-Item",
    "Remove-Item", "Rename-Item", "Get-ChildItem", "Select-String", "Select-Object",
    "Where-Object", "ForEach-Object", "Sort-Object", "Measure-Object", "Group-Object",
    "Format-Table", "Format-List", "Write-Output", "Write-Host", "Write-Error",
    "Write-Warning", "Write-Verbose", "Write-Information", "Write-Debug", "Invoke-WebRequest",
    "Invoke-RestMethod", "Invoke-Expression", "Invoke-Command", "Start-Process",
    "Stop-Process", "Get-Process", "Get-Service", "Start-Service", "Stop-Service",
    "Restart-Service", "New-Service", "Set-Service", "Remove-Service", "Format-Volume",
    "Clear-Disk", "Initialize-Disk", "Set-ExecutionPolicy", "Get-ExecutionPolicy",
    "Restart-Computer", "Stop-Computer", "Register-ScheduledTask",
    "Unregister-ScheduledTask", "New-ScheduledTaskAction", "New-ScheduledTaskTrigger",
    "Set-ItemProperty", "Get-ItemProperty", "New-ItemProperty", "Remove-ItemProperty",
    "Get-Location", "Set-Location", "Push-Location", "Pop-Location", "Resolve-Path",
    "Split-Path", "Join-Path", "Convert-Path", "Get-Date", "Get-Command", "Get-Help",
    "Get-Member", "ConvertTo-Json", "ConvertFrom-Json", "ConvertTo-Csv", "ConvertFrom-Csv",
    "Import-Csv", "Export-Csv", "Tee-Object", "Compare-Object", "Get-Unique",
    "Start-Sleep", "Get-FileHash", "Expand-Archive", "Compress-Archive", "Get-Variable",
    "Get-Alias", "Get-History", "Clear-Host", "Get-PSDrive", "Get-Volume", "Get-Disk",
    "Get-NetTCPConnection", "Test-NetConnection", "Get-ComputerInfo", "Get-CimInstance",
    "Get-WmiObject", "Set-Variable", "New-Variable", "Remove-Variable", "Clear-Content",
    "Get-Random", "Get-Host", "Get-Culture", "Get-Uptime", "Set-Alias", "New-Alias",
    "Start-Job", "Get-Job", "Receive-Job", "Wait-Job", "Remove-Job", "Import-Module",
    "Get-Module", "Install-Module", "Install-Package", "Add-MpPreference",
    "Set-MpPreference", "Disable-ComputerRestore", "Get-Clipboard", "Set-Clipboard",
    "Get-Acl", "Set-Acl", "New-Object", "Add-Type", "Get-Error", "Out-GridView",
    "Invoke-Item", "Enable-PSRemoting", "New-NetFirewallRule", "Set-NetFirewallProfile",
    "Remove-NetFirewallRule", "Clear-RecycleBin", "Clear-EventLog", "Remove-EventLog",
    "Start-BitsTransfer", "Get-EventLog", "Get-WinEvent", "Get-LocalUser", "New-LocalUser",
    "Add-LocalGroupMember", "Remove-LocalUser",
)})


def version_dependent(name: str) -> str | None:
    """Why a name cannot be resolved without knowing the PowerShell version, or None."""
    return VERSION_DEPENDENT.get(name.lower())


def resolve(name: str) -> tuple[str, bool]:
    """The command a name runs, and whether it is a PowerShell command (cmdlet, function or
    alias) rather than a program.

    `rm` -> (`Remove-Item`, True); `get-content` -> (`Get-Content`, True);
    `C:\\Program Files\\Git\\cmd\\git.exe` -> (`git`, False); `npm.cmd` -> (`npm`, False).
    A Verb-Noun name PowerShell does not ship (a module's or the user's) keeps its
    spelling and counts as a PowerShell command: the catalogue then says it is unknown.
    """
    folded = name.lower()
    alias = ALIASES.get(folded)
    if alias is not None:
        return alias, True
    cmdlet = _CMDLETS.get(folded)
    if cmdlet is not None:
        return cmdlet, True
    if _VERB_NOUN.match(name) and "\\" not in name and "/" not in name:
        return name, True
    base = re.split(r"[\\/]", name)[-1]
    base = _PROGRAM_SUFFIX.sub("", base)
    return base.lower() if base else name, False


def has_directory(name: str) -> bool:
    """A command named with a directory (`.\\build.ps1`, `C:\\tools\\x.exe`) runs that file."""
    return "\\" in name or "/" in name
