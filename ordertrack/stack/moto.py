"""moto's S3 server on loopback: the local S3 endpoint for watermark files and Redshift staging."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from ordertrack.errors import MissingToolError
from ordertrack.log import get_logger
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.process import start_detached
from ordertrack.stack.service import PidTracked, ServiceStatus

log = get_logger(__name__)


class MotoService(PidTracked):
    name = "s3"
    grace_seconds = 10.0

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.dir = layout.moto_dir
        self.pid_file = self.dir / "moto.pid"
        self.binary = Path(sys.executable).with_name("moto_server")
        self.marker = str(self.dir)  # moto's argv does not name it; its working folder does

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.layout.moto_port}"

    def check_tools(self) -> None:
        if not self.binary.exists():
            raise MissingToolError(
                f"moto's server is not installed next to {sys.executable}: pip install -e '.[dev]' (or `make setup`)."
            )

    def env(self) -> dict[str, str]:
        # Fixed dummy credentials: moto accepts any, and boto3 refuses to sign without some.
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": "ordertrack-local",
            "AWS_SECRET_ACCESS_KEY": "ordertrack-local-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def up(self) -> ServiceStatus:
        if self.running_pid() is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            # Started in its own folder: the working folder is how `down` recognises it as ours.
            start_detached(
                [str(self.binary), "-H", "127.0.0.1", "-p", str(self.layout.moto_port)],
                log_file=self.dir / "moto.log", pid_file=self.pid_file, cwd=self.dir,
            )
            log.info("stack.s3.started", address=self.url)
        self.wait_healthy(self._healthy, timeout=30, interval=0.3, log_file=self.dir / "moto.log",
                          not_ready=f"moto's S3 server did not answer on {self.url}")
        return self.status()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def status(self) -> ServiceStatus:
        pid = self.running_pid()
        if pid is None:
            return ServiceStatus(self.name, self.url, "stopped", None)
        return ServiceStatus(self.name, self.url, "running" if self._healthy() else "unhealthy", pid, "moto S3")
