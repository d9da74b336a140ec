-- The latest version of each key within the batch just landed: NEWEST_FIRST orders by greater
-- cursor, then later Kafka offset (every version of a key is on one partition, so offsets order
-- them); for change events (binlog CDC) by binlog position first.
CREATE TEMP TABLE batch_latest AS
SELECT r.*
FROM __raw__ AS r
WHERE r._batch_id = :batch_id
QUALIFY ROW_NUMBER() OVER (PARTITION BY __key__ ORDER BY NEWEST_FIRST(r)) = 1
