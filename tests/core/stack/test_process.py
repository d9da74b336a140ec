"""start_detached returns only once the started program can be recognised as ours."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

from ordertrack.stack.process import running_pid, start_detached


def _evict_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _largest_interpreter() -> str:
    found = {os.path.realpath(p) for p in (sys.executable, getattr(sys, "_base_executable", ""),
                                           shutil.which("python3.11") or "", "/usr/bin/python3.11")
             if p and os.path.isfile(p)}
    return max(found, key=os.path.getsize)


def test_a_started_process_is_ours_the_moment_start_detached_returns(tmp_path: Path) -> None:
    # While the kernel finishes an exec, /proc/<pid>/cmdline reads empty. A program whose pages
    # must come from disk (dockerd after a long test run in CI) keeps it empty for milliseconds,
    # and a caller that looked at once took a healthy start for a dead one. A copy of the largest
    # Python interpreter at hand (Debian's is 6.8 MB), evicted from the page cache, is such a
    # program: 17 of 20 starts misjudged before the fix.
    program = tmp_path / "python-for-test"
    shutil.copy2(_largest_interpreter(), program)
    marker = str(program)
    pid_file = tmp_path / "python.pid"
    misjudged = 0
    for _ in range(20):
        _evict_from_page_cache(program)
        pid = start_detached([str(program), "-S", "-c", "import time; time.sleep(60)"],
                             log_file=tmp_path / "python.log", pid_file=pid_file)
        try:
            if running_pid(pid_file, marker) != pid:
                misjudged += 1
        finally:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):  # gone already: reaped
                os.kill(pid, signal.SIGKILL)  # by its pid, whatever the check said
                os.waitpid(pid, 0)
    assert misjudged == 0, f"{misjudged} of 20 fresh starts were taken for gone"
