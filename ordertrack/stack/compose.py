"""The docker-compose stack (docker-compose.yml) from Python: `ordertrack stack compose demo |
down` and the container test (tests/docker) drive it the same way.

`prepare` finds or starts a Docker engine (ordertrack/stack/docker.py), imports the local base
image, writes the stack's env file once (docker/compose.env.example with fresh passwords and the
local base images) and copies the host's extra CAs for the builds (docker/build-ca/README.md).
Every docker-compose call names the project, the env file (for `${...}` in the compose file) and
ORDERTRACK_ENV_FILE (the containers' `env_file`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ordertrack.errors import ConfigError, OrdertrackError, ServiceUnavailableError
from ordertrack.log import get_logger
from ordertrack.stack.docker import BASE_IMAGE, DockerEngine
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.tools import require

log = get_logger(__name__)

COMPOSE_FILE = "docker-compose.yml"
ENV_EXAMPLE = Path("docker") / "compose.env.example"
LONG_RUNNING = ("producer", "worker", "scheduler")
INFRASTRUCTURE = ("kafka", "mariadb", "s3")
CACHE_STAGES = (
    # Dockerfile, builder stage, its base image's compose variable and default, cache tag, service
    ("Dockerfile", "build", "ORDERTRACK_PYTHON_BASE_IMAGE", "python:3.11-slim-bookworm", "pipeline-build", "topics"),
    ("docker/s3/Dockerfile", "build", "ORDERTRACK_PYTHON_BASE_IMAGE", "python:3.11-slim-bookworm", "s3-build", "s3"),
    ("docker/kafka/Dockerfile", "jars", "ORDERTRACK_BASE_IMAGE", "debian:bookworm-slim", "kafka-jars", "kafka"),
    ("docker/connect/Dockerfile", "jars", "ORDERTRACK_BASE_IMAGE", "debian:bookworm-slim", "connect-jars", "connect"),
)
_HINT = "install docker-compose (apt-get install docker-compose)"
_HOST_CAS = Path("/usr/local/share/ca-certificates")


def write_env_file(example: Path, target: Path, base_image: str = BASE_IMAGE) -> None:
    """The example with a fresh password for each `change-me-*` and the images built from `base_image`."""
    text = example.read_text()
    text = re.sub(r"=change-me-[\w-]+", lambda _: "=" + secrets.token_urlsafe(18), text)
    text = re.sub(r"^(ORDERTRACK_(?:PYTHON_)?BASE_IMAGE)=.*$", rf"\1={base_image}", text, flags=re.M)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    # Made 0600 from the start: it holds the passwords.
    with os.fdopen(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(text)


@dataclass(frozen=True)
class ComposeStack:
    root: Path
    """The folder holding docker-compose.yml (the repository)."""
    project: str
    env_file: Path
    docker_host: str
    extra_env: tuple[tuple[str, str], ...] = ()
    """Variables for the compose file's `${...}` that win over the env file (ports, the producer's interval)."""
    own_engine: bool = False
    """The engine is the dockerd ordertrack started (so its images are ours to prune)."""

    @classmethod
    def prepare(cls, root: Path, *, project: str = "ordertrack", env_file: Path | None = None,
                layout: StackLayout | None = None, extra_env: dict[str, str] | None = None,
                base_image: bool = True) -> "ComposeStack":
        if not (root / COMPOSE_FILE).is_file():
            raise ConfigError(f"There is no {COMPOSE_FILE} in {root}: run this from the ordertrack repository.")
        require("docker-compose", _HINT)
        layout = layout or StackLayout.from_env()
        engine = DockerEngine(layout)
        host = engine.up().address
        own = host == engine.own_host
        if base_image:
            engine.ensure_base_image(host)
        env_file = (env_file or layout.root / "compose.env").absolute()
        if not env_file.exists():
            write_env_file(root / ENV_EXAMPLE, env_file)
            log.info("stack.compose.env_written", path=str(env_file))
        for crt in _HOST_CAS.glob("*.crt"):
            shutil.copyfile(crt, root / "docker" / "build-ca" / crt.name)
        return cls(root.absolute(), project, env_file, host, tuple(sorted((extra_env or {}).items())), own)

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.docker_host, "ORDERTRACK_ENV_FILE": str(self.env_file),
                **dict(self.extra_env)}

    def compose(self, *args: str, timeout: float = 1800, check: bool = True,
                capture: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["docker-compose", "-p", self.project, "--env-file", str(self.env_file), *args]
        out = subprocess.run(argv, cwd=self.root, env=self._env(), text=True, timeout=timeout,
                             capture_output=capture)
        if check and out.returncode != 0:
            tail = ((out.stdout or "") + (out.stderr or "")).strip().splitlines()[-5:]
            raise OrdertrackError(f"docker-compose {' '.join(args[:3])} failed (exit {out.returncode}): "
                                  + " / ".join(tail))
        return out

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=self._env(), text=True, capture_output=True, timeout=timeout)

    # -- the stack -----------------------------------------------------------------------------
    def build(self, *services: str, profiles: Sequence[str] = ()) -> float:
        """Build the images (all of the active profiles', or `services`'); the seconds it took.

        The builder stages are tagged first (ordertrack-cache/*): an untagged stage counts as a
        dangling image, and `prune_images` would take the pip and Maven downloads with it."""
        started = time.monotonic()
        wanted = set(services) or {"topics", "kafka", "s3", *(["connect"] if "cdc" in profiles else [])}
        for dockerfile, stage, base_var, default, tag, service in CACHE_STAGES:
            if service not in wanted:
                continue
            out = subprocess.run(
                ["docker", "build", "--network", "host", "--target", stage, "--build-arg",
                 f"BASE_IMAGE={self._setting(base_var, default)}", "-t", f"ordertrack-cache/{tag}:local",
                 "-f", dockerfile, "."],
                cwd=self.root, env={**self._env(), "DOCKER_BUILDKIT": "0"}, text=True, capture_output=True, timeout=3600)
            if out.returncode != 0:
                raise OrdertrackError(f"Building {dockerfile}'s {stage} stage failed: "
                                      + " / ".join((out.stdout + out.stderr).strip().splitlines()[-5:]))
        self.compose(*(a for p in profiles for a in ("--profile", p)), "build", *services, timeout=3600)
        return time.monotonic() - started

    def _setting(self, name: str, default: str) -> str:
        """A `${name}` as compose resolves it: these overrides, then the environment, then the env file."""
        from dotenv import dotenv_values

        return (dict(self.extra_env).get(name) or os.environ.get(name)
                or dotenv_values(self.env_file).get(name) or default)

    def up(self, *services: str) -> None:
        self.compose("up", "-d", *services, timeout=900)

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-q", service).stdout.split()
        if not ids:
            raise ServiceUnavailableError(f"The compose service {service} has no container.")
        return ids[0]

    def health(self, service: str) -> str:
        """healthy, unhealthy, starting, or the container's state when it has no healthcheck."""
        out = self.docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}",
                          self.container(service))
        return out.stdout.strip() or "missing"

    def wait_healthy(self, services: Sequence[str] = LONG_RUNNING, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            states = {s: self.health(s) for s in services}
            if all(v == "healthy" for v in states.values()):
                return
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(f"The compose services did not become healthy within {timeout:.0f}s: "
                                              + ", ".join(f"{k} {v}" for k, v in states.items()))
            time.sleep(3)

    def ordertrack(self, *argv: str, service: str = "worker", new_container: bool = False,
                   check: bool = True, timeout: float = 600, capture_output: bool = True) -> subprocess.CompletedProcess[str]:
        """`ordertrack ARGV` inside the stack: in the running `service` container, or with
        `new_container` in a container of its own (the `cli` service, removed after)."""
        wide = ("-e", "COLUMNS=150")  # rich draws its tables for an 80-column terminal otherwise
        if new_container:
            return self.compose("run", "--rm", "--no-deps", *wide, "cli", *argv, check=check, timeout=timeout,
                                capture=capture_output)
        return self.compose("exec", "-T", *wide, service, "ordertrack", *argv, check=check, timeout=timeout,
                            capture=capture_output)

    def ordertrack_json(self, *argv: str, **kw: Any) -> Any:
        return json.loads(self.ordertrack(*argv, "--json", **kw).stdout)

    def held(self) -> dict[str, tuple[int, int]]:
        """Each source table's rows and its mart's rows (0 before the mart exists): name -> (source, mart)."""
        source = {r["table"]: int(r["rows"]) for r in self.ordertrack_json("source", "counts")}
        marts = self.ordertrack_json("marts", "counts") if source else {}
        return {table: (rows, int((marts.get(table) or {}).get("mart_rows", 0))) for table, rows in source.items()}

    def wait_caught_up(self, timeout: float = 600) -> float:
        """Wait until every mart holds as many rows as its source table; the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        while True:
            try:
                behind = {t: (src, mart) for t, (src, mart) in self.held().items() if mart < src}
            except (OrdertrackError, ValueError) as exc:  # the warehouse file is not made yet, or busy
                behind = {"(not readable yet)": (0, 0)}
                log.debug("stack.compose.not_readable", error=str(exc)[:200])
            if not behind:
                return time.monotonic() - started
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(f"The marts did not catch up with the source within {timeout:.0f}s: "
                                              + ", ".join(f"{t} {m}/{s}" for t, (s, m) in behind.items()))
            time.sleep(5)

    def down(self) -> None:
        self.compose("--profile", "demo", "--profile", "tools", "--profile", "cdc", "down", "--volumes", "--remove-orphans",
                     timeout=600)

    def prune_images(self) -> None:
        """On the engine ordertrack started, remove the images earlier builds left untagged: on
        vfs each holds whole copies of its file system. The tagged images and builder stages (the
        layers the next build reuses) stay. Another engine's images are its owner's business."""
        if self.own_engine:
            self.docker("image", "prune", "--force", timeout=600)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers, networks and volumes of this project still present (none after `down`)."""
        label = f"label=com.docker.compose.project={self.project}"
        found = {}
        for kind, args in (("containers", ["ps", "-a", "-q", "--filter", label]),
                           ("networks", ["network", "ls", "-q", "--filter", label]),
                           ("volumes", ["volume", "ls", "-q", "--filter", label])):
            found[kind] = self.docker(*args).stdout.split()
        return found
