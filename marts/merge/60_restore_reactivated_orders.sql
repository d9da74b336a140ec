-- An archived order whose tracking came back: its order row returns from history to the mart
-- (once per orders history table).
INSERT INTO __orders_mart__
SELECT o.*
FROM __hist__ AS o
WHERE o.order_id IN (SELECT order_id FROM reactivated)
  AND NOT EXISTS (SELECT 1 FROM __orders_mart__ AS m WHERE m.order_id = o.order_id)
