"""Kafka adapters: topic administration and client configuration."""
