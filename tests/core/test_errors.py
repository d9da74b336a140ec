"""A driver's error never carries a password into a sentence (pure logic)."""

from __future__ import annotations

import psycopg

from ordertrack.errors import as_service_error, without_secrets


def test_passwords_a_driver_repeats_are_masked():
    text = 'connection to "postgresql://wh:s3cret-pw@db:5432/w" failed; dsn: host=db password=s3cret-pw user=wh'
    masked = without_secrets(text)
    assert "s3cret-pw" not in masked and "postgresql://wh:***@db:5432/w" in masked and "password=***" in masked


def test_a_lost_postgresql_connection_is_one_sentence_without_its_password():
    err = as_service_error(psycopg.OperationalError("FATAL: password authentication failed; password=s3cret-pw"))
    assert err is not None and "s3cret-pw" not in str(err) and str(err).startswith("The PostgreSQL warehouse did not answer")
