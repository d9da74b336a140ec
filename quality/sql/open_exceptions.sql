-- Consolidation: open exceptions by type, with the oldest and newest detection.
SELECT x.exception_type, COUNT(*) AS open_count, MIN(x.detected_at) AS oldest, MAX(x.detected_at) AS newest
FROM __exceptions__ AS x
WHERE x.resolved_at IS NULL
GROUP BY x.exception_type
ORDER BY x.exception_type
