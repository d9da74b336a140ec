-- `--full` is safe only when raw still holds, for every key of the mart, that version or a newer
-- one: the mart rows counted here would be lost (or moved back) by emptying the mart.
SELECT COUNT(*)
FROM __mart__ AS k
WHERE NOT EXISTS (SELECT 1 FROM batch_latest AS b WHERE KEY_MATCH(b, k) AND NEWER_OR_SAME(b, k))
