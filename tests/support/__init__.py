"""Helpers shared by integration tests (not tests themselves)."""
