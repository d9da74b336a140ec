"""The sidecar: cron-scheduled warehouse jobs, one at a time, every run recorded."""
