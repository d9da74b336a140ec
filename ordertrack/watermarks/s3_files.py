"""The old batch job's watermark files in S3, for moving between the two systems.

One JSON file a table, named `<db>_<table>_<target>.json`, holding at least
`{"mysql_state": {"last_timestamp": "<ISO-8601 UTC>"}}`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlparse

import boto3
import orjson
from botocore.exceptions import BotoCoreError, ClientError

from ordertrack.errors import ConfigError, ServiceUnavailableError
from ordertrack.settings import S3Settings
from ordertrack.tables import TableSpec
from ordertrack.timeparse import parse_utc
from ordertrack.watermarks.model import Watermark


def s3_client(cfg: S3Settings):
    return boto3.client(
        "s3",
        endpoint_url=cfg.endpoint_url_s3,
        region_name=cfg.default_region,
        aws_access_key_id=cfg.access_key_id,
        aws_secret_access_key=cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None,
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    u = urlparse(url)
    if u.scheme != "s3" or not u.netloc:
        raise ConfigError(f"{url!r} is not an S3 location like s3://bucket/prefix/.")
    prefix = u.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return u.netloc, prefix


def file_name(spec: TableSpec) -> str:
    return f"{spec.database}_{spec.name}_{spec.raw_table}.json"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_files(client, url: str, specs: list[TableSpec], marks: dict[str, Watermark]) -> list[str]:
    """Write one old-format file per table that has a watermark; return the keys written."""
    bucket, prefix = parse_s3_url(url)
    written = []
    for spec in specs:
        wm = marks.get(spec.name)
        if wm is None:
            continue
        body = {
            "mysql_state": {"last_timestamp": _iso(wm.position), "last_window_id": wm.window_id},
            "table": spec.source_full_name,
            "target": spec.raw_table,
            "exported_by": "ordertrack",
            "exported_at": datetime.now(timezone.utc).isoformat(),
        }
        key = prefix + file_name(spec)
        try:
            client.put_object(Bucket=bucket, Key=key, Body=orjson.dumps(body, option=orjson.OPT_INDENT_2),
                              ContentType="application/json")
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailableError(f"Writing s3://{bucket}/{key} failed: {exc}") from None
        written.append(f"s3://{bucket}/{key}")
    return written


def import_files(client, url: str, specs: list[TableSpec]) -> dict[str, int]:
    """Read the old-format file of each table; table -> position. A table without a file is left out."""
    bucket, prefix = parse_s3_url(url)
    out: dict[str, int] = {}
    for spec in specs:
        key = prefix + file_name(spec)
        try:
            raw = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                continue
            raise ServiceUnavailableError(f"Reading s3://{bucket}/{key} failed: {exc}") from None
        except BotoCoreError as exc:
            raise ServiceUnavailableError(f"Reading s3://{bucket}/{key} failed: {exc}") from None
        try:
            ts = orjson.loads(raw)["mysql_state"]["last_timestamp"]
            out[spec.name] = parse_utc(str(ts))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ConfigError(
                f"s3://{bucket}/{key} is not an old-format watermark file (mysql_state.last_timestamp, ISO-8601 UTC)."
            ) from None
    return out
