-- The latest version of each key within the batch just landed: greater cursor wins, then the
-- later Kafka offset (every version of a key is on one partition, so offsets order them).
CREATE TEMP TABLE batch_latest AS
SELECT r.*
FROM __raw__ AS r
WHERE r._batch_id = :batch_id
QUALIFY ROW_NUMBER() OVER (PARTITION BY __key__ ORDER BY r.__cursor__ DESC, r._kafka_offset DESC) = 1
