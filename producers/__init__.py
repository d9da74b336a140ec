"""Producers: read windows of the source tables and publish them to Kafka with their watermark."""
