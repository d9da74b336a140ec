-- The same for the mart's history tables (read together).
SELECT COUNT(*)
FROM __history__ AS k
WHERE NOT EXISTS (SELECT 1 FROM batch_latest AS b WHERE KEY_MATCH(b, k) AND NEWER_OR_SAME(b, k))
