"""Cut a process off from Kafka or MariaDB without touching the shared services.

Kafka tells its clients to connect to the address it advertises (127.0.0.1:9092), so a proxy on
another port only carries the bootstrap connection. Instead the process under test runs in its own
network namespace (`unshare -n`), where 127.0.0.1:9092 and 127.0.0.1:3307 are relays of this
script to Unix sockets (a Unix socket is a file, so it crosses namespaces); on the test's side
`UnixRelay` carries each socket on to the real service and can cut and restore the link.

Run inside the namespace: `unshare -n python netns_relay.py 9092=/tmp/k.sock 3307=/tmp/m.sock -- cmd ...`
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes until either side closes, then close both."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def join(a: socket.socket, b: socket.socket) -> None:
    threading.Thread(target=pump, args=(a, b), daemon=True).start()
    threading.Thread(target=pump, args=(b, a), daemon=True).start()


class UnixRelay:
    """The test's end: a Unix socket relayed to a TCP service; `cut()` drops every connection and
    refuses new ones (accepted, then closed at once) until `restore()`."""

    def __init__(self, path: str, target: tuple[str, int]) -> None:
        self.path, self.target = path, target
        self.down = threading.Event()
        self._live: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            if self.down.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._live += [client, upstream]
            join(client, upstream)

    def cut(self) -> None:
        self.down.set()
        with self._lock:
            live, self._live = self._live, []
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.cut()
        self._server.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def _listen(port: int, path: str) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)

    def accept() -> None:
        while True:
            client, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(path)
            except OSError:
                client.close()  # the test's end is gone: as if the service refused
                upstream.close()
                continue
            join(client, upstream)

    threading.Thread(target=accept, daemon=True).start()


def main(argv: list[str]) -> int:
    sep = argv.index("--")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for spec in argv[:sep]:
        port, path = spec.split("=", 1)
        _listen(int(port), path)
    child = subprocess.Popen(argv[sep + 1:])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _: child.send_signal(s))
    return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
