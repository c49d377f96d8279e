"""`runestone install|uninstall|doctor <host>`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runestone.integrations import install as hosts_install


def run_install_command(args: argparse.Namespace) -> int:
    installer = INSTALLERS.get(args.host)
    if installer is None:
        print(f"runestone: unknown host {args.host!r}; one of {', '.join(INSTALLERS)}",
              file=sys.stderr)
        return 2
    path = Path(args.settings) if args.settings else installer["path"]()
    try:
        data = hosts_install.read_settings(path)
    except (OSError, ValueError) as exc:
        print(f"runestone: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    if args.command == "install":
        target = getattr(args, "target", None) or hosts_install.current_target()
        python = getattr(args, "python", None)
        if python is None and target != hosts_install.current_target():
            print(f"runestone: name the {target} interpreter the hook runs with --python",
                  file=sys.stderr)
            return 2
        try:
            data = installer["install"](data, http=getattr(args, "http", False),
                                        port=getattr(args, "port", 8765), target=target,
                                        python=python)
        except ValueError as exc:
            print(f"runestone: {path}: {exc}", file=sys.stderr)
            return 1
        backup = hosts_install.write_settings(path, data)
        print(f"installed the {args.host} hook in {path}"
              + (f" (backup: {backup})" if backup else ""))
        return 0
    if args.command == "uninstall":
        remove = installer.get("uninstall", hosts_install.remove_ours)
        data, removed = remove(data, args.host, installer["events"])
        if removed and not data:
            gone = hosts_install.remove_settings(path)
            print(f"removed {removed} Runestone entr{'y' if removed == 1 else 'ies'}; "
                  f"{path} held nothing else and is gone"
                  + (f", with Runestone's backups in the project ({gone})" if gone else ""))
            return 0
        backup = hosts_install.write_settings(path, data) if removed else None
        if backup is not None and hosts_install.inside_project(path):
            gone = hosts_install.remove_backups(path)
            backup = None
            print(f"removed {removed} Runestone entr{'y' if removed == 1 else 'ies'} from "
                  f"{path} (and {gone} backup file{'s' if gone != 1 else ''} in the project)")
            return 0
        print(f"removed {removed} Runestone entr{'y' if removed == 1 else 'ies'} from {path}"
              + (f" (backup: {backup})" if backup else ""))
        return 0
    report = hosts_install.DoctorReport()
    installer["doctor"](data, report, hosts_install.run_shell, path=path)
    _sandbox_line(report, args.host)
    print(f"{args.host} settings: {path}")
    print("\n".join(report.lines))
    verdict = "the hook works and fails closed" if report.ok else "NOT PROTECTED"
    if report.ok and report.unproven:
        verdict = "the Windows hook is in the form its host reads; prove it with doctor on Windows"
    print("verdict: " + verdict)
    return 0 if report.ok else 1


def _sandbox_line(report: hosts_install.DoctorReport, host: str) -> None:
    """Whether `sandbox` decisions can be carried out here (a warning, not a failure: where
    they cannot, they become asks, which is safe)."""
    from runestone.home import layout
    from runestone.integrations.hosts import HOSTS
    from runestone.sandbox.probe import unavailable

    why = unavailable(layout().state_dir)
    adapter = HOSTS.get(host)
    if why:
        report.warn(f"sandbox: unavailable ({why}); `sandbox` decisions become `ask`")
    elif adapter is not None and not getattr(adapter, "can_contain", False):
        report.warn(f"sandbox: works on this machine, but {host} cannot run a rewritten "
                    "command, so `sandbox` decisions become `ask` for it")
    else:
        report.good("sandbox: works (bubblewrap, user namespaces); `sandbox` decisions run "
                    "contained")


INSTALLERS = hosts_install.HOSTS
