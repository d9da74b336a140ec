-- Verification: rows of the period that are due but not (identically) in history. Must be 0.
SELECT COUNT(*)
FROM __mart__ AS m
WHERE m.__cursor__ >= :period_start AND m.__cursor__ < :period_end AND m.__cursor__ < :cutoff
  AND KEY_PRESENT(m) AND ARCHIVABLE(m)
  AND NOT EXISTS (
    SELECT 1 FROM __hist__ AS h
    WHERE KEY_MATCH(h, m) AND h.__cursor__ = m.__cursor__ AND h._kafka_offset = m._kafka_offset
  )
