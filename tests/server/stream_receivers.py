"""Real receivers for the audit stream's tests.

- `Rsyslog`: Debian's rsyslogd in the foreground with a config, port, pid file and work
  directory of its own in a temp directory, taking RFC 5424 over TCP or TLS (ossl driver)
  and writing each message's APP-NAME, MSGID and structured data to a file.
- `OtlpReceiver`: this file run as a process (`python stream_receivers.py PORT FILE`), an
  OTLP/HTTP logs endpoint that decodes each ExportLogsServiceRequest with
  opentelemetry-proto and appends one JSON line per log record (fsynced before it answers).

Each can be stopped, killed and started again on the same port and file.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
SD = re.compile(r'\[runestone@32473 ([^\]]*)\]')
PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _wait_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the receiver exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the receiver did not listen on {port}: {log.read_text()[-2000:]}")


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runestone test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem",
             "key": directory / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return paths


class Rsyslog:
    """rsyslogd -n with its own everything in `directory`."""

    def __init__(self, directory: Path, port: int, *, tls: dict[str, Path] | None = None):
        self.directory, self.port, self.tls = directory, port, tls
        self.output = directory / "received.log"
        self.log = directory / "rsyslogd.log"
        self.process: subprocess.Popen | None = None
        (directory / "work").mkdir(parents=True, exist_ok=True)
        driver = ""
        global_tls = ""
        if tls:
            global_tls = (f' DefaultNetstreamDriverCAFile="{tls["ca"]}"'
                          f' DefaultNetstreamDriverCertFile="{tls["cert"]}"'
                          f' DefaultNetstreamDriverKeyFile="{tls["key"]}"')
            driver = ' StreamDriver.Name="ossl" StreamDriver.Mode="1" ' \
                     'StreamDriver.AuthMode="anon"'
        self.config = directory / "rsyslog.conf"
        # A direct main queue: a message is written by the thread that read it, so when
        # rsyslog closes a session everything read on it is in the file.
        self.config.write_text(
            f'global(workDirectory="{directory / "work"}" maxMessageSize="64k"{global_tls})\n'
            'main_queue(queue.type="Direct")\n'
            f'module(load="imtcp"{driver})\n'
            f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
            'template(name="line" type="string" '
            'string="%app-name% %msgid% %structured-data%\\n")\n'
            f'action(type="omfile" file="{self.output}" template="line" '
            'flushOnTXEnd="on" asyncWriting="off")\n')

    def start(self) -> None:
        handle = self.log.open("a")
        self.process = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(self.config), "-i", str(self.directory / "pid")],
            stdout=handle, stderr=subprocess.STDOUT)
        _wait_port(self.port, self.process, self.log)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)

    def positions(self) -> list[tuple[str, int]]:
        """(runtime, seq) of every message received, resends included."""
        found = []
        if not self.output.exists():
            return found
        for line in self.output.read_text(errors="replace").splitlines():
            match = SD.search(line)
            if match and line.startswith("runestone "):
                params = dict(PARAM.findall(match.group(1)))
                found.append((params["runtime"], int(params["seq"])))
        return found


class OtlpReceiver:
    """This file as a process: an OTLP/HTTP logs receiver."""

    def __init__(self, directory: Path, port: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.output = port, directory / "otlp.jsonl"
        self.log = directory / "otlp.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        handle = self.log.open("a")
        self.process = subprocess.Popen([sys.executable, __file__, str(self.port),
                                         str(self.output)], stdout=handle,
                                        stderr=subprocess.STDOUT)
        _wait_port(self.port, self.process, self.log)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def records(self) -> list[dict]:
        if not self.output.exists():
            return []
        return [json.loads(line) for line in self.output.read_text().splitlines()
                if line.endswith("}")]

    def positions(self) -> list[tuple[str, int]]:
        return [(r["attributes"]["runestone.runtime"], int(r["attributes"]["runestone.seq"]))
                for r in self.records()]


def _value(value) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _serve(port: int, output: Path) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
        ExportLogsServiceResponse,
    )

    handle = output.open("a")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = ExportLogsServiceRequest()
            request.ParseFromString(body)
            lines = []
            for resource in request.resource_logs:
                service = {kv.key: _value(kv.value) for kv in resource.resource.attributes}
                for scope in resource.scope_logs:
                    for log in scope.log_records:
                        lines.append(json.dumps({
                            "service": service, "scope": scope.scope.name,
                            "time": log.time_unix_nano, "severity": log.severity_text,
                            "body": log.body.string_value,
                            "attributes": {kv.key: _value(kv.value) for kv in log.attributes},
                        }))
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()
            os.fsync(handle.fileno())
            answer = ExportLogsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)  # one request at a time
    server.serve_forever()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), Path(sys.argv[2]))
