-- Orders (in the orders mart or its history) older than the grace period with no scan event in
-- the scan-event mart or any of its history tables.
SELECT o.order_id,
       'order added at ' || CAST(o.add_time AS VARCHAR) || ' has no scan event' AS notes
FROM __orders__ AS o
WHERE o.order_id IS NOT NULL
  AND o.add_time < :added_before
  AND NOT EXISTS (SELECT 1 FROM __scan_events__ AS e WHERE e.order_id = o.order_id)
