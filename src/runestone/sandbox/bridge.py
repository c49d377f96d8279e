"""Inside a networked sandbox: relay 127.0.0.1:PORT to the proxy's Unix socket, then run
the command.

Run as `python -I bridge.py SOCKET PORT -- CMD...` as the sandbox's first process (a
standalone script: it imports nothing of Runestone, whose home is hidden anyway). It exits
with the command's status; the sandbox's PID namespace ends with it.
"""

import contextlib
import os
import socket
import sys
import threading


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    threading.Thread(target=copy, args=(b, a), daemon=True).start()
    copy(a, b)


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            continue
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True).start()


def main() -> int:
    path, port, sep, *command = sys.argv[1:]
    if sep != "--" or not command:
        print("usage: bridge.py SOCKET PORT -- CMD...", file=sys.stderr)
        return 2
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    pid = os.fork()
    if pid == 0:
        listener.close()
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"runestone sandbox: cannot run {command[0]}: {exc}", file=sys.stderr)
            os._exit(127)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
        128 + os.WTERMSIG(status)


if __name__ == "__main__":
    sys.exit(main())
