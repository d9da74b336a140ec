-- Raw rows past the cutoff, merged or not: with the count deleted, how many were kept because
-- their batch is not merged yet.
SELECT COUNT(*) FROM __raw__ WHERE _ingested_at < :cutoff
