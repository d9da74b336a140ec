"""A second, secured local stack for the tests that need TLS and SASL (`secure_stack` fixture).

It is `Stack.up(postgres=False, connect=False, secure=True)` under its own state folder
(`<repo>/.stack/secure-tests`, or `<ORDERTRACK_STATE_DIR>/secure-tests`; not under pytest's
temporary folder, whose 0700 mode a server running as another user could not pass) on the main
stack's ports shifted by `PORT_SHIFT` (every port, the main ones read from the environment or the
defaults), so it never meets the main stack. The session starts it once and stops it (by the
pids it recorded) at the end; its state folder is kept, so the next session reuses the
certificates and data folders and starts in seconds.

`secure_stack_connect` adds Kafka Connect to that same stack (`up(connect=True)`: the worker
over SASL_SSL as `ordertrack-connect`), only for the tests that ask for it; the session's end
stops it with the rest.

Missing tools fail the test in CI and skip it elsewhere, like every integration fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from ordertrack.errors import MissingToolError, OrdertrackError
from ordertrack.stack import Stack
from ordertrack.stack.envfile import read_env
from ordertrack.stack.layout import StackLayout
from ordertrack.stack.tls import StackTLS

PORT_SHIFT = 400  # not 300: the default S3 port 5055 would become 5355, LLMNR's (systemd-resolved)
PORT_FIELDS = ("kafka_port", "kafka_controller_port", "kafka_secure_port", "kafka_mtls_port", "mariadb_port",
               "postgres_port", "moto_port", "connect_port")


@dataclass
class SecureStack:
    stack: Stack
    env: dict[str, str]
    """That stack's `.env`: the secured settings (KAFKA_SECURITY_PROTOCOL=SASL_SSL, ...)."""

    @property
    def layout(self) -> StackLayout:
        return self.stack.layout

    @property
    def state_dir(self) -> Path:
        return self.layout.root

    @property
    def tls(self) -> StackTLS:
        return StackTLS(self.layout.tls_dir)

    def up(self) -> None:
        """`stack up` again (idempotent); refreshes `env`."""
        self.stack.up(postgres=False, connect=False, secure=True)
        self.env = read_env(self.layout.env_file)


def secure_layout(shift: int = PORT_SHIFT) -> StackLayout:
    main = StackLayout.from_env()
    root = main.root / "secure-tests"
    return replace(main, root=root, **{f: getattr(main, f) + shift for f in PORT_FIELDS})


@pytest.fixture(scope="session")
def secure_stack() -> Iterator[SecureStack]:
    from tests.conftest import service_missing

    layout = secure_layout()
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.root.chmod(0o755)
    stack = Stack(layout)
    try:
        stack.up(postgres=False, connect=False, secure=True)
    except MissingToolError as e:
        stack.down()
        service_missing(f"the secured stack ({e})")
    except OrdertrackError:
        stack.down()  # never leave half of it running
        raise
    try:
        yield SecureStack(stack, read_env(layout.env_file))
    finally:
        stack.down()


@pytest.fixture(scope="session")
def secure_stack_connect(secure_stack: SecureStack) -> SecureStack:
    """`secure_stack` with its Kafka Connect worker started (secured: SASL_SSL, its own ACLs)."""
    from tests.conftest import service_missing

    try:
        secure_stack.stack.up(postgres=False, connect=True, secure=True)
    except MissingToolError as e:
        service_missing(f"Kafka Connect on the secured stack ({e})")
    secure_stack.env = read_env(secure_stack.layout.env_file)
    return secure_stack
