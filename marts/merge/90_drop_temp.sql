DROP TABLE IF EXISTS batch_latest
