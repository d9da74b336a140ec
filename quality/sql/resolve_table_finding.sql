-- The table-level exception of a check that now passes for that table is resolved, saying so.
UPDATE __exceptions__
SET resolved_at = CURRENT_TIMESTAMP, resolved_by = 'dq', resolution_notes = 'no longer found by the ' || :check_name || ' check'
WHERE exception_type = :exception_type AND source_table = :source_table
  AND order_id IS NULL AND resolved_at IS NULL
