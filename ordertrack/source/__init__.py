"""The MySQL/MariaDB source: connections, the schema of the three tables, the synthetic workload."""
