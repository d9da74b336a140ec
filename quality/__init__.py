"""Data quality: the daily checks, the exceptions they record, and key-by-key reconciliation."""
