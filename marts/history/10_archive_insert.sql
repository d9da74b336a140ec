-- Copy one half-year of rows older than the cutoff into its history table; a retry copies
-- nothing twice (rows already there are skipped).
INSERT INTO __hist__
SELECT m.*
FROM __mart__ AS m
WHERE m.__cursor__ >= :period_start AND m.__cursor__ < :period_end AND m.__cursor__ < :cutoff
  AND KEY_PRESENT(m) AND ARCHIVABLE(m)
  AND NOT EXISTS (SELECT 1 FROM __hist__ AS h WHERE KEY_MATCH(h, m))
