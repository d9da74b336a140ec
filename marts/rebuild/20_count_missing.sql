-- Keys raw holds that neither the mart nor its history holds: the rows merge/50 inserts.
SELECT COUNT(*)
FROM batch_latest AS b
WHERE NOT EXISTS (SELECT 1 FROM __mart__ AS m WHERE KEY_MATCH(m, b))
  AND NOT EXISTS (SELECT 1 FROM __history__ AS h WHERE KEY_MATCH(h, b))
  AND NOT HARD_DELETE(b)
