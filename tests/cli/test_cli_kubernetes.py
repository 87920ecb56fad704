"""The Kubernetes backend at the client seam: what it asks the API server to do, and in what order.

The API objects are a recording fake (`fakekube.py`); the stack files are the project's own, with
bucket names of the test's (the offsite side runs against moto's S3 on 127.0.0.1).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clihelp import TypedInput
from fakekube import BACKUP_ID, CRONJOB, NAMESPACE, FakeKube

from jobs.cli import main
from jobs.errors import ExitCode
from jobs.local.s3 import LocalS3

REPO = Path(__file__).resolve().parents[2]
PROD_DB = "vocab_app_production"


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> FakeKube:
    fake = FakeKube()
    monkeypatch.setattr("jobs.backends.kubernetes.load_apis", lambda *_: (fake, fake, fake))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    return fake


@pytest.fixture
def stacks(
    project: Callable[[str, str], Path], s3: LocalS3, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The project's staging and production stack files, with buckets of this test in moto."""
    suffix = uuid.uuid4().hex[:8]
    buckets = {
        "staging": f"vocab-app-staging-backups-{suffix}",
        "production": f"vocab-app-production-backups-{suffix}",
    }
    for stack in ("staging", "production"):
        text = (REPO / f"Pulumi.{stack}.yaml").read_text()
        for name, bucket in buckets.items():
            text = text.replace(f"vocab-app-{name}-postgres-backups", bucket)
        project(stack, text)
        s3.create_bucket(buckets[stack])
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    return buckets


def put_offsite_set(s3: LocalS3, bucket: str, db: str, backup_id: str) -> None:
    client = s3.client()
    base = f"postgres/{db}/{backup_id}"
    client.put_object(Bucket=bucket, Key=f"{base}/dump/toc.dat", Body=b"toc")
    manifest = {
        "format": 1,
        "id": backup_id,
        "database": db,
        "status": "verified",
        "total_bytes": 3,
        "finished_at": "2026-01-19T02:03:00Z",
    }
    client.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(manifest))


def staging(*argv: str) -> int:
    return main(["--stack", "staging", *argv])


def created_steps(kube: FakeKube) -> list[str]:
    return [c[3] for c in kube.calls if c[0] == "create_job"]


def env_of(job: dict) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][-1]
    return {e["name"]: e.get("value") for e in container["env"]}


# -- backup ----------------------------------------------------------------------------------------
def test_backup_job_is_made_like_kubectl_create_job_from_cronjob(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert staging("backup") == 0

    [job] = kube.created()
    template = kube.cronjob["spec"]["jobTemplate"]
    meta = job["metadata"]
    assert meta["namespace"] == NAMESPACE
    assert meta["name"].startswith(f"{CRONJOB}-manual-")
    assert meta["labels"] == template["metadata"]["labels"]
    assert meta["annotations"] == {
        **template["metadata"]["annotations"],
        "cronjob.kubernetes.io/instantiate": "manual",
    }
    [owner] = meta["ownerReferences"]
    assert owner["kind"] == "CronJob" and owner["name"] == CRONJOB
    assert owner["uid"] == kube.cronjob["metadata"]["uid"]
    assert owner["controller"] is True
    assert job["spec"] == template["spec"]
    out = capsys.readouterr().out
    assert "=== Backup Summary ===" in out
    assert "pgbackup --stack staging restore 20260119t130000z --database vocab_app_staging" in out


def test_backup_refused_while_another_backup_job_runs(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    kube.jobs.append(
        {
            "metadata": {
                "name": f"{CRONJOB}-29470000",
                "namespace": NAMESPACE,
                "ownerReferences": [{"kind": "CronJob", "name": CRONJOB}],
            },
            "spec": {},
            "status": {"active": 1},
        }
    )
    assert staging("backup") == ExitCode.LOCKED
    assert created_steps(kube) == []
    assert f"{CRONJOB}-29470000" in capsys.readouterr().err


def test_namespace_comes_from_the_stack_file(
    kube: FakeKube, stacks: dict[str, str], project: Callable[[str, str], Path]
) -> None:
    text = (REPO / "Pulumi.staging.yaml").read_text().replace(NAMESPACE, "elsewhere")
    project("staging", text.replace("vocab-app-staging-postgres-backups", stacks["staging"]))
    kube.cronjob["metadata"]["namespace"] = "elsewhere"
    assert staging("backup") == 0
    assert {c[1] for c in kube.calls if c[0] in ("read_cronjob", "create_job")} == {"elsewhere"}


# -- restore ---------------------------------------------------------------------------------------
def test_restore_scales_down_swaps_and_scales_back_to_the_recorded_replicas(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert staging("restore", BACKUP_ID, "--yes") == 0

    order = [
        c[3] if c[0] == "create_job" else f"scale={c[3]}"
        for c in kube.calls
        if c[0] in ("create_job", "scale")
    ]
    assert order == [
        "inventory.sh",
        "verify.sh",  # the chosen set, before anything else is done
        "upload.sh",  # the fresh backup: a manual Job of the CronJob (backup, then upload)
        "restore.sh:prepare",
        "scale=0",
        "restore.sh:swap",
        "scale=3",
    ]
    assert kube.replicas == {"vocab-app-api": 3}
    # the fresh backup deletes no old set (it might be the one being restored)
    assert env_of(kube.job_for("upload.sh"))["SKIP_RETENTION"] == "1"
    out = capsys.readouterr().out
    assert f"kept as vocab_app_staging__pre_restore_{BACKUP_ID}" in out
    assert "kubectl -n vocab-app-staging rollout status deployment/vocab-app-api" in out


def test_replicas_are_restored_when_the_swap_fails(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    kube.replicas = {"vocab-app-api": 4}
    kube.fail["restore.sh:swap"] = int(ExitCode.STEP_FAILED)

    assert staging("restore", BACKUP_ID, "--yes", "--skip-fresh-backup") == ExitCode.STEP_FAILED

    assert [c[3] for c in kube.calls if c[0] == "scale"] == [0, 4]
    assert kube.replicas == {"vocab-app-api": 4}
    assert "broke on purpose" in capsys.readouterr().err


def test_a_failed_prepare_never_touches_the_app(kube: FakeKube, stacks: dict[str, str]) -> None:
    kube.fail["restore.sh:prepare"] = int(ExitCode.CORRUPT)
    assert staging("restore", BACKUP_ID, "--yes", "--skip-fresh-backup") == ExitCode.CORRUPT
    assert not [c for c in kube.calls if c[0] == "scale"]
    assert "restore.sh:swap" not in created_steps(kube)


def test_restore_jobs_run_the_cronjob_pod_under_the_reader_service_account(
    kube: FakeKube, stacks: dict[str, str]
) -> None:
    assert staging("restore", BACKUP_ID, "--yes", "--skip-fresh-backup") == 0

    template = kube.cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    backup_container = template["initContainers"][0]
    for step in ("restore.sh:prepare", "restore.sh:swap"):
        job = kube.job_for(step)
        pod = job["spec"]["template"]["spec"]
        assert job["metadata"]["namespace"] == NAMESPACE
        assert pod["serviceAccountName"] == "vocab-app-postgres-restore"
        assert pod["securityContext"] == template["securityContext"]
        assert pod["volumes"] == template["volumes"]
        assert pod["initContainers"] == []
        [container] = pod["containers"]
        assert container["command"] == ["bash", "/scripts/restore.sh"]
        assert container["image"] == backup_container["image"]
        assert container["securityContext"] == backup_container["securityContext"]
        assert container["volumeMounts"] == backup_container["volumeMounts"]
        env = env_of(job)
        assert env["PGDATABASE"] == "vocab_app_staging"
        assert env["BACKUP_ID"] == BACKUP_ID
        assert env["PGPASSWORD_FILE"] == "/etc/pgbackup/db/password"


def test_restore_to_a_new_database_does_not_scale_or_swap(
    kube: FakeKube, stacks: dict[str, str]
) -> None:
    assert staging("restore", BACKUP_ID, "--to", "vocab_copy", "--yes") == 0
    assert created_steps(kube) == ["inventory.sh", "verify.sh", "restore.sh:all"]
    assert not [c for c in kube.calls if c[0] == "scale"]
    assert env_of(kube.job_for("restore.sh:all"))["TARGET_DATABASE"] == "vocab_copy"


def test_typed_confirmation_is_the_database_name(
    kube: FakeKube, stacks: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", TypedInput("vocab_app_production\n"))
    assert staging("restore", BACKUP_ID) == ExitCode.ABORTED
    assert created_steps(kube) == ["inventory.sh"]
    monkeypatch.setattr("sys.stdin", TypedInput("vocab_app_staging\n"))
    assert staging("restore", BACKUP_ID, "--skip-fresh-backup") == 0


def test_dry_run_creates_no_job_and_scales_nothing(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert staging("restore", BACKUP_ID, "--dry-run") == 0
    assert created_steps(kube) == ["inventory.sh"]  # only to look the set up
    assert not [c for c in kube.calls if c[0] == "scale"]
    out = capsys.readouterr().out
    assert "scale the app to 0: vocab-app-api (3 replicas)" in out
    assert "Dry run: nothing was changed." in out


# -- another stack's backup ------------------------------------------------------------------------
def test_source_stack_restore_reads_production_offsite_and_writes_nothing_there(
    kube: FakeKube, stacks: dict[str, str], s3: LocalS3
) -> None:
    production = stacks["production"]
    put_offsite_set(s3, production, PROD_DB, BACKUP_ID)
    before = s3.client().list_object_versions(Bucket=production).get("Versions", [])

    assert staging("restore", "--source-stack", "production", "latest", "--yes") == 0

    assert created_steps(kube) == [
        "upload.sh",  # fresh backup of staging
        "fetch.sh",
        "restore.sh:prepare",
        "restore.sh:swap",
    ]
    assert {c[1] for c in kube.calls if c[0] in ("create_job", "scale", "read_cronjob")} == {
        NAMESPACE
    }
    fetch_job = kube.job_for("fetch.sh")
    fetch_pod = fetch_job["spec"]["template"]["spec"]
    assert fetch_pod["serviceAccountName"] == "vocab-app-postgres-restore"
    env = env_of(fetch_job)
    assert env["S3_BUCKET"] == production and env["S3_PREFIX"] == "postgres"
    assert env["DATABASE"] == PROD_DB and env["BACKUP_ID"] == BACKUP_ID
    assert fetch_pod["containers"][0]["image"].startswith("amazon/aws-cli")
    restore_env = env_of(kube.job_for("restore.sh:prepare"))
    assert restore_env["SOURCE_DATABASE"] == PROD_DB
    assert restore_env["PGDATABASE"] == "vocab_app_staging"
    # The set goes to, and is read from, production's folder on staging's volume.
    swap_env = env_of(kube.job_for("restore.sh:swap"))
    assert env["SOURCE_STACK"] == restore_env["SOURCE_STACK"] == swap_env["SOURCE_STACK"]
    assert swap_env["SOURCE_STACK"] == "production"
    assert s3.client().list_object_versions(Bucket=production).get("Versions", []) == before


def test_source_stack_without_a_grant_is_a_config_error(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--stack", "production", "restore", "--source-stack", "staging", "latest", "--yes"]
    assert main(argv) == ExitCode.CONFIG
    assert "pgbackup:crossStackRead" in capsys.readouterr().err
    assert created_steps(kube) == []


# -- status ----------------------------------------------------------------------------------------
def test_status_reads_the_cronjob_and_an_inventory_job(
    kube: FakeKube, stacks: dict[str, str], s3: LocalS3, capsys: pytest.CaptureFixture[str]
) -> None:
    put_offsite_set(s3, stacks["staging"], "vocab_app_staging", BACKUP_ID)
    kube.cronjob["spec"]["suspend"] = True

    assert staging("status") == 0

    out = capsys.readouterr().out
    assert "0 2 * * * Etc/UTC" in out
    assert "SUSPENDED" in out
    assert "2026-01-19T02:03:00Z" in out
    assert f"Newest (volume):  {BACKUP_ID}" in out
    assert f"Newest (offsite): {BACKUP_ID}" in out
    assert "8.0 GiB of 32.0 GiB (25%)" in out
    # Each database has a volume of its own: any other folder of sets there is named.
    assert "Also on volume:   billing: 2 set(s), 4.0 KiB, of a database this volume does not" in out
    assert created_steps(kube) == ["inventory.sh"]


def test_status_shows_the_drill_cronjobs_own_record(
    kube: FakeKube, stacks: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The monthly drill runs in the cluster: its Jobs are the record, not a file here."""
    drill = "vocab-app-postgres-restore-drill"
    kube.other_cronjobs[drill] = {
        "metadata": {"name": drill, "namespace": NAMESPACE},
        "status": {"lastSuccessfulTime": "2026-01-01T04:09:00Z"},
    }
    assert staging("status") == 0
    assert "Last drill:       passed 2026-01-01T04:09:00Z" in capsys.readouterr().out

    kube.jobs.append(
        {
            "metadata": {
                "name": f"{drill}-29470000",
                "namespace": NAMESPACE,
                "ownerReferences": [{"kind": "CronJob", "name": drill}],
            },
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "lastTransitionTime": "2026-02-01T04:07:00Z",
                    }
                ]
            },
        }
    )
    assert staging("status") == 0
    assert "Last drill:       FAILED 2026-02-01T04:07:00Z" in capsys.readouterr().out


# -- drill -----------------------------------------------------------------------------------------
def drill_cronjob() -> dict[str, Any]:
    """The staging stack's drill CronJob as the API server would return it."""
    from infra.render import collect_resources
    from jobs.backends.kube_runner import plain

    drill = next(
        r.inputs
        for r in collect_resources("staging")
        if r.type == "kubernetes:batch/v1:CronJob"
        and r.inputs["metadata"]["name"] == "vocab-app-postgres-restore-drill"
    )
    cronjob: dict[str, Any] = {**plain(drill), "apiVersion": "batch/v1", "kind": "CronJob"}
    cronjob["metadata"].update(namespace=NAMESPACE, uid="drill-uid")
    return cronjob


def test_drill_runs_a_job_from_the_drill_cronjob_and_records_it(
    kube: FakeKube,
    stacks: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kube.cronjob = drill_cronjob()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    assert staging("drill") == 0

    [job] = kube.created()
    assert job["metadata"]["name"].startswith("vocab-app-postgres-restore-drill-manual-")
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["spec"] == kube.cronjob["spec"]["jobTemplate"]["spec"]
    pod = job["spec"]["template"]["spec"]
    assert [c["command"][-1] for c in pod["containers"]] == ["/scripts/drill.sh"]
    # the drill never sees the live database's password
    assert all("secret" not in v for v in pod["volumes"])
    assert "5600 rows match the manifest" in capsys.readouterr().out
    record = json.loads(
        (tmp_path / "pgbackup" / "drill-staging-vocab_app_staging.json").read_text()
    )
    assert record["status"] == "passed"


def test_a_drill_from_offsite_fetches_the_set_onto_the_volume_then_drills_that_set(
    kube: FakeKube,
    stacks: dict[str, str],
    s3: LocalS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The copy a disaster recovery would restore is the one drilled."""
    drill = drill_cronjob()
    kube.other_cronjobs[drill["metadata"]["name"]] = drill
    put_offsite_set(s3, stacks["staging"], "vocab_app_staging", BACKUP_ID)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))

    assert staging("drill", "--from", "offsite") == 0

    assert created_steps(kube) == ["fetch.sh", "drill.sh"]
    fetch, drilled = kube.created()
    assert env_of(fetch)["BACKUP_ID"] == BACKUP_ID  # the newest offsite, resolved first
    # The set just fetched, not whatever is newest on the volume.
    assert env_of(drilled)["BACKUP_ID"] == BACKUP_ID


def test_backups_are_suspended_and_resumed_through_the_cronjob(
    kube: FakeKube, stacks: dict[str, str]
) -> None:
    """What a disaster recovery does while the data is not back yet."""
    from jobs.backends.kubernetes import KubernetesBackend
    from jobs.stack import load_stack

    backend = KubernetesBackend(load_stack("staging"), kube, kube, kube)
    assert backend.suspend_backups("vocab_app_staging", True) is False
    assert kube.cronjob["spec"]["suspend"] is True
    assert backend.suspend_backups("vocab_app_staging", True) is True  # no second patch
    assert backend.suspend_backups("vocab_app_staging", False) is True
    assert kube.cronjob["spec"]["suspend"] is False
    patches = [c for c in kube.calls if c[0] == "patch_cronjob"]
    assert [c[3]["spec"]["suspend"] for c in patches] == [True, False]
