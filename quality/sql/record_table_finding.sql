-- A finding about a whole table (extraction, freshness) becomes an open exception without an
-- order id, unless one of the same type for the same table is open already.
INSERT INTO __exceptions__ (order_id, exception_type, detected_at, notes, source_table)
SELECT CAST(NULL AS BIGINT), :exception_type, CURRENT_TIMESTAMP, :notes, :source_table
WHERE NOT EXISTS (
  SELECT 1 FROM __exceptions__ AS e
  WHERE e.exception_type = :exception_type AND e.source_table = :source_table
    AND e.order_id IS NULL AND e.resolved_at IS NULL
)
