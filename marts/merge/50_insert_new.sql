-- Insert the batch's versions that are not older than what the mart or its history holds; a key
-- the source deleted (binlog CDC, `deletes: hard`) is not inserted: HARD_DELETE is false otherwise.
INSERT INTO __mart__
SELECT b.*
FROM batch_latest AS b
WHERE NOT EXISTS (SELECT 1 FROM __mart__ AS m WHERE KEY_MATCH(m, b))
  AND NOT EXISTS (SELECT 1 FROM __history__ AS h WHERE KEY_MATCH(h, b))
  AND NOT HARD_DELETE(b)
