"""A Docker engine for the compose stack, and the local base image its builds start from.

Where an engine already answers (`DOCKER_HOST`, or the system's `/var/run/docker.sock`) it is
used as it is. Otherwise `up` starts Debian's `dockerd` as an ordinary process (docs/RUNTIME.md,
"Containers"): vfs storage, no iptables, no default bridge (compose's own networks work), its
data folder in the user's cache (`~/.cache/ordertrack/docker`) so built layers, and with them the
pip and Maven downloads, outlive a clone. Its sockets sit in a short /tmp folder (a unix socket
path is limited to 108 bytes). One engine serves every clone of the same cache: `up` reuses a
running one, `down` stops it by its pid.

No image registry may be reachable, so the images build `FROM ordertrack/debian:bookworm`: a
Debian bookworm `debootstrap --variant=minbase` root file system, made once into the cache (a
tar file) and imported into the engine when it lacks the image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from ordertrack.errors import MissingToolError, OrdertrackError, ServiceUnavailableError
from ordertrack.log import get_logger
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import start_detached, stop_pid
from ordertrack.stack.service import PidTracked, ServiceStatus
from ordertrack.stack.tools import require

log = get_logger(__name__)

BASE_IMAGE = "ordertrack/debian:bookworm"
_DOCKER_HINT = "install Docker's engine (apt-get install docker.io docker-compose)"
_DEBOOTSTRAP_HINT = "install debootstrap (apt-get install debootstrap)"
_MIRROR = "http://deb.debian.org/debian"


def _ping(host: str, timeout: float = 3.0) -> bool:
    """True when the engine at a unix:// DOCKER_HOST answers its /_ping."""
    if not host.startswith("unix://"):
        return _ping_with_client(host)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(host.removeprefix("unix://"))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
        return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0] + b" "
    except OSError:
        return False


def _ping_with_client(host: str) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    out = subprocess.run([docker, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                         env={**os.environ, "DOCKER_HOST": host}, timeout=30)
    return out.returncode == 0


class DockerEngine(PidTracked):
    """The engine as a local-stack service: found running, or a dockerd started and stopped by pid."""

    name = "docker"
    grace_seconds = 60.0  # dockerd stops its containers and its containerd before it exits

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.data_root = layout.cache / "docker"
        digest = hashlib.sha256(str(self.data_root).encode()).hexdigest()[:10]
        self.run_dir = Path(tempfile.gettempdir()) / f"ordertrack-docker-{os.getuid()}-{digest}"
        self.socket = self.run_dir / "docker.sock"
        self.pid_file = self.run_dir / "ordertrack-dockerd.pid"
        self.log_file = layout.cache / "docker-engine.log"
        self.marker = str(self.data_root)  # dockerd's command line names it: a reused pid cannot pass for it
        self.base_tar = layout.cache / "docker-base" / "debian-bookworm-minbase.tar"

    @property
    def own_host(self) -> str:
        return f"unix://{self.socket}"

    def existing_host(self) -> str | None:
        """An engine that answers without us: DOCKER_HOST, the system's socket, or ours."""
        for host in (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock", self.own_host):
            if host and _ping(host):
                return host
        return None

    def up(self) -> ServiceStatus:
        found = self.status()
        if found.state == "running":
            return found
        if os.environ.get("DOCKER_HOST"):
            raise ServiceUnavailableError(f"No Docker engine answers at DOCKER_HOST={os.environ['DOCKER_HOST']}; "
                                          "start it, or unset DOCKER_HOST to let ordertrack start one.")
        dockerd = require("dockerd", _DOCKER_HINT)
        if os.geteuid() != 0:
            raise MissingToolError("Starting a Docker engine needs root (dockerd); run it as root, or start "
                                   "Docker yourself and set DOCKER_HOST.")
        self.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        argv = [dockerd, "--iptables=false", "--bridge=none", "--storage-driver=vfs",
                f"--data-root={self.data_root}", f"--exec-root={self.run_dir / 'exec'}",
                f"--pidfile={self.run_dir / 'dockerd.pid'}", f"--host={self.own_host}"]
        pid = start_detached(argv, log_file=self.log_file, pid_file=self.pid_file)
        log.info("stack.docker.started", pid=pid, host=self.own_host, data_root=str(self.data_root))
        try:
            self.wait_healthy(lambda: _ping(self.own_host), timeout=60, interval=0.3, log_file=self.log_file,
                              not_ready=f"dockerd did not answer on {self.socket}")
        except BaseException:
            # A start that fails its wait must not leave an engine behind for the caller's
            # clean-up to miss (twice in CI, before `start_detached` waited for the exec to finish,
            # a healthy dockerd was judged gone and left running): stopped here, by its pid.
            stop_pid(pid, self.marker, grace_seconds=self.grace_seconds)
            self.pid_file.unlink(missing_ok=True)
            raise
        return ServiceStatus(self.name, self.own_host, "running", pid, "started by ordertrack")

    def idle(self) -> bool:
        """True when the engine ordertrack started holds no container (running or stopped): a
        container left in its data folder would start again with the engine."""
        if self.running_pid() is None:
            return True
        docker = shutil.which("docker")
        if docker is None:
            return True
        out = subprocess.run([docker, "ps", "-a", "-q"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "DOCKER_HOST": self.own_host})
        return out.returncode == 0 and not out.stdout.split()

    def status(self) -> ServiceStatus:
        """`address` is the DOCKER_HOST to use ("" when no engine answers); `pid` only for ours."""
        host = self.existing_host()
        if host is None:
            return ServiceStatus(self.name, "", "stopped", None)
        pid = self.running_pid() if host == self.own_host else None
        return ServiceStatus(self.name, host, "running", pid, "started by ordertrack" if pid else "found running")

    # -- the local base image ------------------------------------------------------------------
    def ensure_base_image(self, host: str) -> str:
        """Import ordertrack/debian:bookworm into the engine at `host` if it lacks it; its name."""
        docker = require("docker", _DOCKER_HINT)
        env = {**os.environ, "DOCKER_HOST": host}
        if subprocess.run([docker, "image", "inspect", BASE_IMAGE], capture_output=True, env=env).returncode == 0:
            return BASE_IMAGE
        if not self.base_tar.exists():
            self._debootstrap()
        with open(self.base_tar, "rb") as tar:
            out = subprocess.run([docker, "import", "-", BASE_IMAGE], stdin=tar, capture_output=True, text=True,
                                 env=env, timeout=600)
        if out.returncode != 0:
            raise OrdertrackError(f"Importing the base image failed: {out.stderr.strip()}")
        log.info("stack.docker.base_imported", image=BASE_IMAGE, tar=str(self.base_tar))
        return BASE_IMAGE

    def _debootstrap(self) -> None:
        debootstrap = require("debootstrap", _DEBOOTSTRAP_HINT)
        if os.geteuid() != 0:
            raise MissingToolError("Making the base image needs root (debootstrap).")
        self.base_tar.parent.mkdir(parents=True, exist_ok=True)
        log.info("stack.docker.debootstrap", into=str(self.base_tar))
        with tempfile.TemporaryDirectory(dir=self.base_tar.parent) as tmp:
            rootfs = Path(tmp) / "rootfs"
            out = subprocess.run([debootstrap, "--variant=minbase", "bookworm", str(rootfs), _MIRROR],
                                 capture_output=True, text=True, timeout=1800)
            if out.returncode != 0:
                tail = (out.stdout + out.stderr).strip().splitlines()[-2:]
                raise OrdertrackError(f"debootstrap could not make the base image: {' / '.join(tail)}")
            # What an image needs no copy of: the downloaded packages, the package lists, the docs
            # (files only: packages installed later expect the folders, e.g. /usr/share/man/man1).
            for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
                for p in (rootfs / sub).rglob("*"):
                    if p.is_file() or p.is_symlink():
                        p.unlink()
            partial = self.base_tar.with_suffix(".tar.partial")
            subprocess.run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], check=True, timeout=600)
            partial.rename(self.base_tar)
