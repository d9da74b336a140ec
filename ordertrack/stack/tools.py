"""Checks for the programs the local stack runs, each failing with one sentence saying what to install."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from ordertrack.errors import MissingToolError


def require(program: str, install_hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise MissingToolError(f"`{program}` is not installed: {install_hint}.")
    return path


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
