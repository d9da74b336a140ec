-- Keys of the batch found in history with an older version: archived rows coming back to life
-- (a source delete of an archived row is not one: it only removes the row).
CREATE TEMP TABLE reactivated AS
SELECT DISTINCT b.order_id
FROM batch_latest AS b
JOIN __history__ AS h ON KEY_MATCH(h, b)
WHERE NEWER(b, h)
  AND NOT DELETE_EVENT(b)
