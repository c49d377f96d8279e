"""A seccomp filter for the sandbox: system calls a contained command has no business
making, refused with EPERM before the kernel looks at them.

Namespaces, dropped capabilities and `no_new_privs` already stop what the escape tests
try; this is the next layer, the one Flatpak and Claude Code's Linux sandbox also add:

- `ioctl(TIOCSTI)` and `ioctl(TIOCLINUX)`: pushing keystrokes into a terminal (already
  cut off by `--new-session`; refused here whatever the terminal);
- the kernel keyring (`keyctl`, `add_key`, `request_key`), `perf_event_open`, `bpf`,
  `userfaultfd` (a favourite of kernel exploits), `kexec_*`, module loading, `iopl`,
  `ioperm`, `swapon`/`swapoff`, `syslog`, `acct`, `quotactl`, `lookup_dcookie`,
  `open_by_handle_at` and `name_to_handle_at` (the classic container escape);
- mounting, by the old and the new mount API, and `pivot_root`, `chroot`;
- any call through another ABI: x32 numbers on x86-64, and anything not x86-64 (32-bit
  `int 0x80` calls have other numbers, so a list of x86-64 numbers would not hold them).

`ptrace` stays allowed: inside the PID namespace it reaches only the command's own
processes, and debuggers and leak checkers use it. The filter is written for x86-64; on
another machine none is loaded and the other layers stand alone (`program()` is None).
The program is classic BPF, as `bwrap --seccomp FD` reads it.
"""

from __future__ import annotations

import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
RET_ALLOW = 0x7FFF0000
RET_ERRNO_EPERM = 0x00050000 | 1
TIOCSTI, TIOCLINUX = 0x5412, 0x541C
IOCTL = 16
# x86-64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl).
DENIED = {
    "iopl": 172, "ioperm": 173, "swapon": 167, "swapoff": 168, "syslog": 103, "acct": 163,
    "quotactl": 179, "lookup_dcookie": 212, "kexec_load": 246, "kexec_file_load": 320,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "add_key": 248,
    "request_key": 249, "keyctl": 250, "perf_event_open": 298, "bpf": 321,
    "userfaultfd": 323, "name_to_handle_at": 303, "open_by_handle_at": 304, "mount": 165,
    "umount2": 166, "pivot_root": 155, "chroot": 161, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
}

_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_NR, _ARCH, _ARG1 = 0, 4, 24  # offsets in struct seccomp_data (args[1], low word)


def program() -> bytes | None:
    """The filter as `struct sock_filter[]` bytes, or None where it is not written for
    this machine."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return None
    numbers = sorted(DENIED.values())
    # Layout: 0 load arch; 1 arch check; 2 load nr; 3 x32 check; one JEQ per denied
    # number; ioctl check; load arg1; TIOCSTI; TIOCLINUX; allow; deny.
    deny = 4 + len(numbers) + 4 + 1
    allow = deny - 1
    code: list[tuple[int, int, int, int]] = [
        (_LD_ABS, 0, 0, _ARCH),
        (_JEQ, 0, deny - 2, AUDIT_ARCH_X86_64),
        (_LD_ABS, 0, 0, _NR),
        (_JGE, deny - 4, 0, X32_SYSCALL_BIT),
    ]
    for number in numbers:
        here = len(code)
        code.append((_JEQ, deny - here - 1, 0, number))
    here = len(code)
    code.append((_JEQ, 0, allow - here - 1, IOCTL))
    code.append((_LD_ABS, 0, 0, _ARG1))
    for request in (TIOCSTI, TIOCLINUX):
        here = len(code)
        code.append((_JEQ, deny - here - 1, 0, request))
    code.append((_RET, 0, 0, RET_ALLOW))
    code.append((_RET, 0, 0, RET_ERRNO_EPERM))
    assert len(code) == deny + 1 and all(0 <= jt < 256 and 0 <= jf < 256
                                         for _, jt, jf, _ in code)
    return b"".join(struct.pack("<HBBI", op, jt, jf, k) for op, jt, jf, k in code)
