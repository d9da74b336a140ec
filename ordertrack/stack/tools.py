"""Checks for the programs the local stack runs, each failing with one sentence saying what to install."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

from ordertrack.errors import MissingToolError, OrdertrackError


def require(program: str, install_hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise MissingToolError(f"`{program}` is not installed: {install_hint}.")
    return path


POSTGRES_HINT = "install PostgreSQL's server (apt-get install postgresql)"
POSTGRES_LIBDIR = Path("/usr/lib/postgresql")


def _major(version_dir: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version_dir.name))


def require_postgres(program: str, version: str | None = None) -> str:
    """A PostgreSQL server program (`postgres`, `initdb`). Debian keeps them off PATH, in
    /usr/lib/postgresql/<major>/bin: the folder of `version` (the major an existing data folder
    was made by) first, then PATH, then the newest major installed."""
    if version is not None and (POSTGRES_LIBDIR / version / "bin" / program).is_file():
        return str(POSTGRES_LIBDIR / version / "bin" / program)
    path = shutil.which(program)
    if path is not None:
        return path
    installed = sorted((d for d in POSTGRES_LIBDIR.glob("*") if (d / "bin" / program).is_file()), key=_major)
    if not installed:
        raise MissingToolError(f"`{program}` is not installed: {POSTGRES_HINT}.")
    return str(installed[-1] / "bin" / program)


@functools.cache
def require_java(minimum: int = 17) -> str:
    java = require("java", f"install a Java {minimum}+ runtime (apt-get install openjdk-17-jre-headless)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if m is None:
        raise MissingToolError(f"Could not read the version of {java}; Kafka needs Java {minimum} or newer.")
    major = int(m.group(1))
    if major == 1 and m.group(2):  # "1.8" style
        major = int(m.group(2))
    if major < minimum:
        raise MissingToolError(f"Kafka 4 needs Java {minimum} or newer, but {java} is Java {major}.")
    return java


MAVEN_HINT = "install Maven (apt-get install maven) so the jars can be fetched from Maven Central"


def fetch_with_maven(pom: Path, into: Path, what: str, marker: Path | None = None) -> None:
    """Resolve `pom`'s runtime dependencies from Maven Central into `into` (copy-dependencies),
    once: a marker file says the folder is complete, so an interrupted fetch is done again."""
    marker = marker or into / ".complete"
    if marker.exists():
        return
    into.mkdir(parents=True, exist_ok=True)
    from ordertrack.log import get_logger

    get_logger(__name__).info("stack.fetching", what=what, into=str(into))
    argv = [require("mvn", MAVEN_HINT), "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            f"-DoutputDirectory={into}", "-DincludeScope=runtime"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        tail = (out.stdout + out.stderr).strip().splitlines()[-3:]
        raise OrdertrackError(f"Maven could not fetch {what} from Maven Central: {' / '.join(tail)}")
    marker.write_text(what + "\n")
