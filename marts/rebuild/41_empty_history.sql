-- `--full`: one history table of the mart emptied (the runner runs this file for each one);
-- archival splits the rebuilt mart into history again.
DELETE FROM __hist__
