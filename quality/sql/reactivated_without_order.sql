-- Orders whose tracking was reactivated (an archived order scanned again) but which have no row
-- in the orders mart: the automatic restore from order history found nothing to restore.
SELECT DISTINCT t.order_id, 'reactivated tracking, no order row in the orders mart' AS notes
FROM __tracking__ AS t
JOIN __exceptions__ AS x ON x.order_id = t.order_id AND x.exception_type = 'reactivated_order'
WHERE NOT EXISTS (SELECT 1 FROM __orders_mart__ AS o WHERE o.order_id = t.order_id)
