-- Keys of the batch found in history with an older version: archived rows coming back to life.
CREATE TEMP TABLE reactivated AS
SELECT DISTINCT b.order_id
FROM batch_latest AS b
JOIN __history__ AS h ON KEY_MATCH(h, b)
WHERE b.__cursor__ > h.__cursor__ OR (b.__cursor__ = h.__cursor__ AND b._kafka_offset > h._kafka_offset)
