-- The restored order rows leave history (verified present in the mart first).
DELETE FROM __hist__
WHERE order_id IN (SELECT order_id FROM reactivated)
  AND order_id IN (SELECT order_id FROM __orders_mart__)
