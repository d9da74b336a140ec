"""The fault harness: the whole pipeline under a sustained load, one fault after another, judged
by the project's own reconciliation (issue 10, "Prove it under load").

    .venv/bin/python -m bench.chaos --duration 30m      # the long run (`make chaos DURATION=30m`)
    .venv/bin/python -m bench.chaos --short             # a few minutes (tests/chaos/test_chaos.py)
    .venv/bin/python -m bench.chaos --short --faults producer_kill   # one fault only

It starts a private stack (own state folder, own ports; the shared stack is never touched), a
pipeline config whose window buffer is one minute, and as its own child processes: `generate
--live` (the load), `produce --every`, the faust worker `consume` and the sidecar `scheduler`.
Then, spread over `--duration`, it injects the faults of `faults.FAULTS` one after another. After
each it waits (on conditions, with a deadline) until the pipeline has recovered: every table's
watermark committed again after the fault, and landing lag back to the transaction markers.
Nothing is restarted by hand except what the fault itself killed; a pipeline process that exits
by itself is a finding (it is restarted after the outage so the later faults still measure
something).

At the end it stops the load, waits until the producer has published past the last source
write and the worker has landed it, stops the pipeline with SIGTERM and judges: `ordertrack dq
reconcile` of every table (0 missing, 0 extra, 0 stale), raw rows unique per (topic, partition,
offset), mart keys unique. It prints a table (or `--json`), writes the same result to
`<state>/harness/result.json`, and exits 0 only when nothing was lost, duplicated or stuck and
no pipeline process exited by itself (1 otherwise, 2 when the harness itself could not run).

Modules: `settings` (profiles, paths, environment), `services` (the CLI under test, the private
stack), `processes` (children and their logs), `run` (waits and probes), `faults`, `phases` (the
run from start to judgement), `judge`, `report`, `cli`.
"""
