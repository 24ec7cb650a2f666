"""The spool in a bucket (the S3 API), for API replicas that share no disk.

The same promise as the folder spool (services/spool.py): recent images not kept for training
wait here, bounded in objects and bytes, so an expert's feedback on any replica can still
store the photo another replica predicted. Keys are content hashes, so two replicas writing
the same image write the same object.

Objects are trimmed oldest first by the folder spool's ``SpoolCaps``: each replica counts what
it wrote and lists the bucket only when its count says a cap may be reached; between two
listings the bucket can hold what the other replicas wrote meanwhile (at most one listing
interval of their traffic over the caps).

An unreachable bucket never fails a prediction: the image is then simply not spooled, and a
later feedback answers 409 (upload it again) unless the image URL can be fetched again.
"""

from __future__ import annotations

import logging
from typing import Any

from .spool import SHA256, SpoolCaps

log = logging.getLogger(__name__)


def parse_bucket_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix/")."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def s3_client(endpoint_url: str = "") -> Any:
    import boto3
    from botocore.config import Config

    # Short timeouts and few retries: a spool write sits on a prediction's path.
    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


class ObjectSpool:
    def __init__(self, client: Any, bucket_url: str, max_files: int = 2000, max_bytes: int = 200 * 1024 * 1024):
        self.client = client
        self.bucket, self.prefix = parse_bucket_url(bucket_url)
        self.caps = SpoolCaps(max_files, max_bytes)
        self._ensure_bucket()

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
                raise
            self.client.create_bucket(Bucket=self.bucket)
            log.info("created the spool bucket %r", self.bucket)
        except BotoCoreError as exc:  # unreachable now: predictions go on, spooling waits for it
            log.warning("the spool bucket %r cannot be reached: %s", self.bucket, exc)

    def _key(self, sha256: str) -> str:
        if not SHA256.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.prefix + sha256

    def put(self, sha256: str, data: bytes) -> None:
        try:
            key = self._key(sha256)
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
            self.caps.trim(len(data), lambda: self._objects(key), self._delete)
        except ValueError:
            raise
        except Exception as exc:
            log.warning("could not spool image %s: %s", sha256[:12], exc)

    def get(self, sha256: str) -> bytes | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
            return bytes(body.read())
        except ValueError:
            return None
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                log.warning("could not read spooled image %s: %s", sha256[:12], exc)
            return None

    def _objects(self, written: str) -> list[tuple[Any, int, str]]:
        objects = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                if SHA256.match(item["Key"][len(self.prefix) :]):
                    # Times have whole seconds: among equals, the object just written goes last.
                    objects.append(((item["LastModified"], item["Key"] == written), item["Size"], item["Key"]))
        return objects

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # the API deletes at most 1000 at once
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})
