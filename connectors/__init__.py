"""Connectors: Kafka Connect / Debezium configurations for the binlog CDC source."""
