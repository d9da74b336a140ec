"""Consumers: faust-streaming workers that land micro-batches into the warehouse exactly once."""
