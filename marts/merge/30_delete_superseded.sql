-- Replace a mart row only with a version that is newer (NEWER_OR_SAME: or the same message landed
-- again). A delete (binlog CDC) supersedes the row too; 50 does not insert it back.
DELETE FROM __mart__
USING batch_latest AS b
WHERE KEY_MATCH(__mart__, b)
  AND NEWER_OR_SAME(b, __mart__)
