-- The findings become open exceptions; an order with an open exception of the same type gets no
-- second row.
INSERT INTO __exceptions__ (order_id, exception_type, detected_at, notes, source_table)
SELECT f.order_id, :exception_type, CURRENT_TIMESTAMP, f.notes, :source_table
FROM dq_findings AS f
WHERE NOT EXISTS (
  SELECT 1 FROM __exceptions__ AS e
  WHERE e.order_id = f.order_id AND e.exception_type = :exception_type AND e.resolved_at IS NULL
)
