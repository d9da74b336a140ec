-- `--full`: the mart is rebuilt from raw alone. DELETE, not TRUNCATE: Redshift's TRUNCATE commits
-- the transaction it runs in.
DELETE FROM __mart__
