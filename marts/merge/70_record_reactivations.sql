-- Record that the reactivation happened and was healed, unless an open row already says so.
INSERT INTO __exceptions__ (order_id, exception_type, detected_at, notes, resolved_at, resolution_notes, source_table)
SELECT r.order_id, 'reactivated_order', CURRENT_TIMESTAMP, 'archived order received a new tracking update',
       CURRENT_TIMESTAMP, 'order row restored from history automatically', 'uni_tracking_info'
FROM reactivated AS r
WHERE NOT EXISTS (
  SELECT 1 FROM __exceptions__ AS e
  WHERE e.order_id = r.order_id AND e.exception_type = 'reactivated_order' AND e.resolved_at IS NULL
)
