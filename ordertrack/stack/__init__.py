"""The local stack: Kafka and MariaDB as ordinary processes under one ignored state folder."""

from ordertrack.stack.manager import Stack

__all__ = ["Stack"]
