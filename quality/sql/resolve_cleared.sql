-- Open exceptions of a check's type whose order the check no longer finds are resolved, saying so.
UPDATE __exceptions__
SET resolved_at = CURRENT_TIMESTAMP, resolved_by = 'dq', resolution_notes = 'no longer found by the ' || :check_name || ' check'
WHERE exception_type = :exception_type
  AND resolved_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM dq_findings AS f WHERE f.order_id = __exceptions__.order_id)
