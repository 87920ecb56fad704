"""Offsite sets read straight from S3 with boto3: listing, `latest`, and download to a folder.

Used by both backends from the operator's machine (read-only calls only: ListObjectsV2 and
GetObject). The endpoint comes from `S3_ENDPOINT_URL` (empty for AWS); credentials the standard way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.backends.base import BackupSet, DownloadResult
from jobs.errors import ExitCode, PgBackupError

# The variables that choose AWS credentials and region, as the aws CLI and boto3 read them.
AWS_CREDENTIAL_VARIABLES = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_PROFILE": "profile_name",
    "AWS_DEFAULT_REGION": "region_name",
    "AWS_REGION": "region_name",
}


@dataclass
class OffsiteStore:
    bucket: str
    prefix: str
    endpoint_url: str = ""
    # The environment the steps get (the local backend's): its AWS_* variables choose the
    # credentials here too. None: boto3's own chain, from this process's environment.
    env: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.prefix = self.prefix.strip("/")
        self._client: Any = None

    # -- plumbing ----------------------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            import boto3

            chosen = {
                argument: self.env[name]
                for name, argument in AWS_CREDENTIAL_VARIABLES.items()
                if self.env and self.env.get(name)
            }
            session = boto3.session.Session(**chosen)
            self._client = session.client("s3", endpoint_url=self.endpoint_url or None)
        return self._client

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    @contextmanager
    def _errors(self, what: str, where: str = "") -> Iterator[None]:
        """S3 failures as one-line errors with a named code."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        target = f"s3://{self.bucket}/{where}"
        try:
            yield
        except NoCredentialsError as error:
            raise PgBackupError(
                f"no AWS credentials to {what} {target}",
                "log in to AWS (AWS_PROFILE, SSO or the reader role) and try again",
                ExitCode.DENIED,
            ) from error
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise PgBackupError(
                    f"S3 refused to {what} {target} ({code})",
                    "use credentials of the bucket's reader role",
                    ExitCode.DENIED,
                ) from error
            if code in ("NoSuchBucket", "NoSuchKey", "404"):
                raise PgBackupError(
                    f"{target} does not exist ({code})",
                    "check the stack's offsite bucket and prefix",
                    ExitCode.NOT_FOUND,
                ) from error
            raise PgBackupError(
                f"S3 error while trying to {what} {target}: {error}",
                "check S3_ENDPOINT_URL and the network, then retry",
                ExitCode.UNREACHABLE,
            ) from error
        except BotoCoreError as error:
            raise PgBackupError(
                f"cannot reach S3 to {what} {target}: {error}",
                "check S3_ENDPOINT_URL and the network, then retry",
                ExitCode.UNREACHABLE,
            ) from error

    def _objects(self, prefix: str) -> list[dict[str, Any]]:
        objects: list[dict[str, Any]] = []
        with self._errors("list", prefix):
            paginator = self.client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                objects.extend(page.get("Contents", []))
        return objects

    def _get(self, key: str, filename: Path) -> None:
        with self._errors("download", key):
            self.client().download_file(self.bucket, key, str(filename))

    def _manifest(self, db: str, backup_id: str) -> dict[str, Any] | None:
        key = self._key(db, backup_id, "manifest.json")
        try:
            with self._errors("read", key):
                body = self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except PgBackupError as error:
            if error.code == ExitCode.NOT_FOUND:
                return None
            raise
        try:
            data: dict[str, Any] = json.loads(body)
            return data
        except ValueError:
            return {"status": "failed"}

    # -- what the backends use ---------------------------------------------------------------
    def list_sets(self, db: str | None = None) -> list[BackupSet]:
        """Sets under the prefix (one database or all), newest first. A set without a manifest
        is listed as incomplete (an upload in progress or interrupted)."""
        objects = self._objects(self._key(db or "") + "/")
        sizes: dict[tuple[str, str], int] = {}
        manifests: set[tuple[str, str]] = set()
        for obj in objects:
            relative = obj["Key"][len(self.prefix) + 1 :] if self.prefix else obj["Key"]
            parts = relative.split("/")
            if len(parts) < 3:
                continue
            key = (parts[0], parts[1])
            sizes[key] = sizes.get(key, 0) + int(obj.get("Size", 0))
            if len(parts) == 3 and parts[2] == "manifest.json":
                manifests.add(key)
        sets = []
        for database, backup_id in sizes:
            manifest = (
                self._manifest(database, backup_id) if (database, backup_id) in manifests else None
            )
            sets.append(
                BackupSet(
                    database=database,
                    id=backup_id,
                    bytes=int((manifest or {}).get("total_bytes") or sizes[(database, backup_id)]),
                    status=str(manifest.get("status", "failed")) if manifest else "incomplete",
                    finished_at=str((manifest or {}).get("finished_at", "")),
                    where="offsite",
                )
            )
        return sorted(sets, key=lambda s: s.id, reverse=True)

    def _download_files(
        self, db: str, backup_id: str, files: list[dict[str, Any]], into: Path
    ) -> int:
        """Every file the manifest lists, each checked against its sha256; returns the bytes."""
        total = 0
        for index, entry in enumerate(files, 1):
            path = _safe(str(entry.get("path", "")), backup_id)
            destination = into / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            print(f"    [{index}/{len(files)}] {path}", file=sys.stderr, flush=True)
            self._get(self._key(db, backup_id, path), destination)
            if _sha256(destination) != entry.get("sha256"):
                raise PgBackupError(
                    f"checksum mismatch for {path} of set {backup_id}: the offsite copy is corrupt",
                    "use an older set (`pgbackup list --from offsite`) and check the bucket's "
                    "object versions",
                    ExitCode.CORRUPT,
                )
            total += destination.stat().st_size
        return total

    def resolve(self, db: str, backup_id: str) -> str:
        sets = self.list_sets(db)
        if backup_id == "latest":
            for candidate in sets:
                if candidate.verified:
                    return candidate.id
            raise PgBackupError(
                f"no verified set of {db} in s3://{self.bucket}/{self._key(db)}/",
                "run `pgbackup backup` and let the upload finish, or check the bucket and prefix",
                ExitCode.NOT_FOUND,
            )
        for candidate in sets:
            if candidate.id == backup_id:
                if candidate.status == "incomplete":
                    raise PgBackupError(
                        f"offsite set {backup_id} of {db} has no manifest (incomplete upload)",
                        "pick a complete set from `pgbackup list`",
                        ExitCode.CORRUPT,
                    )
                return candidate.id
        raise PgBackupError(
            f"no set {backup_id} of {db} in s3://{self.bucket}/{self._key(db)}/",
            "pick an id from `pgbackup list --from offsite`",
            ExitCode.NOT_FOUND,
        )

    def download(self, db: str, backup_id: str, to_dir: Path) -> DownloadResult:
        """Copy a set to `to_dir/<id>/` through `<id>.partial/`, every file checked against the
        manifest's sha256 before the folder gets its final name (as fetch.sh with FETCH_TO)."""
        backup_id = self.resolve(db, backup_id)
        manifest = self._manifest(db, backup_id)
        if not manifest or manifest.get("status") != "verified":
            raise PgBackupError(
                f"offsite set {backup_id} of {db} is not verified",
                "pick a verified set from `pgbackup list --from offsite`",
                ExitCode.CORRUPT,
            )
        final = to_dir / backup_id
        if final.exists():
            raise PgBackupError(
                f"{final} already exists",
                "remove it or download into another folder",
                ExitCode.USAGE,
            )
        partial = to_dir / f"{backup_id}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        to_dir.mkdir(parents=True, exist_ok=True)
        files = [e for e in manifest.get("files") or [] if isinstance(e, dict)]
        # globals.sql holds role password hashes: everything is private to the operator.
        previous_umask = os.umask(0o077)
        try:
            partial.mkdir()
            total = self._download_files(db, backup_id, files, partial)
            if not (partial / "SHA256SUMS").exists():
                self._get(self._key(db, backup_id, "SHA256SUMS"), partial / "SHA256SUMS")
            # The manifest last, as it was uploaded: its presence means the set is complete.
            self._get(self._key(db, backup_id, "manifest.json"), partial / "manifest.json")
            _fsync_tree(partial)
            os.rename(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)  # never a partial set left behind
            raise
        finally:
            os.umask(previous_umask)
        return DownloadResult(database=db, id=backup_id, path=final, bytes=total, files=len(files))


def _safe(path: str, backup_id: str) -> str:
    if not path or path.startswith("/") or ".." in Path(path).parts:
        raise PgBackupError(
            f"manifest of {backup_id} names an unsafe path {path!r}",
            "the set is corrupt: use another one",
            ExitCode.CORRUPT,
        )
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
