"""`dq run`'s exit code tells a data problem (1) from an outage that stopped a check (4)."""

from __future__ import annotations

from quality.results import CheckResult, DqReport


def test_exit_codes_tell_data_problems_from_checks_that_could_not_run():
    ok, found = CheckResult("alignment"), CheckResult("alignment", status="found", found=2)
    down = CheckResult("freshness", status="error", message="Kafka at 127.0.0.1:1 did not answer.")
    assert DqReport([ok], {}).exit_code == 0
    assert DqReport([found], {"tracking_scan_misaligned": 2}).exit_code == 1
    report = DqReport([found, down], {"tracking_scan_misaligned": 2})
    assert report.exit_code == 4  # the picture is incomplete: the outage wins, the data problem is still told
    assert report.to_dict()["data_problems"] is True
    assert report.to_dict()["could_not_check"] == [{"check": "freshness", "error": "Kafka at 127.0.0.1:1 did not answer."}]
