"""What binlog CDC (Debezium) needs from the source account, and why: one list for the local
stack's account and for the checks `connectors apply` runs against any source."""

from __future__ import annotations

CDC_PRIVILEGES = {
    "SELECT": "to snapshot the tables",
    "RELOAD": "for the snapshot's brief FLUSH TABLES WITH READ LOCK (a consistent binlog position)",
    "REPLICATION SLAVE": "to stream the binlog",
    "BINLOG MONITOR": "to read where the binlog stands (SHOW MASTER STATUS)",
}
"""MariaDB names; MySQL calls the last one REPLICATION CLIENT (MariaDB accepts it as an alias)."""

GLOBAL_PRIVILEGES = tuple(p for p in CDC_PRIVILEGES if p != "SELECT")
"""Granted ON *.*; SELECT is granted on the source database only."""
