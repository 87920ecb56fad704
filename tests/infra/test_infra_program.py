"""Both stack files through the real program under the mock runtime: what each declares, and the
properties that keep backups safe."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from infra_testing import backup_cronjob, env_of, one, only, pod_spec

from infra.mock_run import ProgramRun, collect_resources, run_program

CRONJOB = "kubernetes:batch/v1:CronJob"
BUCKET = "aws:s3/bucket:Bucket"


def inventory(run: ProgramRun) -> Counter[str]:
    return Counter(r.type for r in run.resources if r.custom)


def test_inventory_of_each_stack(runs: dict[str, ProgramRun]) -> None:
    common = {
        "kubernetes:core/v1:PersistentVolumeClaim": 1,
        "kubernetes:core/v1:ConfigMap": 1,
        CRONJOB: 2,  # the backup and the monthly restore drill
        "kubernetes:core/v1:ServiceAccount": 2,
        "kubernetes:rbac.authorization.k8s.io/v1:Role": 1,
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": 1,
        BUCKET: 1,
        "aws:kms/key:Key": 1,
        "aws:kms/alias:Alias": 1,
        "aws:s3/bucketVersioning:BucketVersioning": 1,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": 1,
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": 1,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls": 1,
        "aws:s3/bucketPolicy:BucketPolicy": 1,
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": 1,
        "aws:iam/role:Role": 2,
        "aws:iam/rolePolicy:RolePolicy": 2,
    }
    assert inventory(runs["staging"]) == Counter(common)
    lock = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
    rule = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"  # alerts: production only
    assert inventory(runs["production"]) == Counter({**common, lock: 1, rule: 1})


def test_components_parent_every_resource(runs: dict[str, ProgramRun]) -> None:
    for run in runs.values():
        top = [r for r in run.resources if r.parent is None or r.parent.endswith("::stack")]
        urns = {r.urn for r in run.resources}
        assert [r.type for r in run.resources if r.parent not in urns] == [
            "pgbackup:index:PostgresBackup"
        ], top
        components = {r.type for r in run.resources if not r.custom}
        assert {
            "pgbackup:index:BackupVolume",
            "pgbackup:index:ScriptsConfigMap",
            "pgbackup:index:BackupCronJob",
            "pgbackup:index:DatabaseBackup",
            "pgbackup:index:KubernetesAccess",
            "pgbackup:index:OffsiteBucket",
            "pgbackup:index:OffsiteCredentials",
        } <= components


def test_data_bearing_resources_are_protected(runs: dict[str, ProgramRun]) -> None:
    for run in runs.values():
        protected = {r.type for r in run.resources if r.protect}
        assert protected == {
            BUCKET,
            "aws:kms/key:Key",
            "kubernetes:core/v1:PersistentVolumeClaim",
        }


def test_exports_name_what_the_jobs_need(runs: dict[str, ProgramRun]) -> None:
    exports = runs["production"].exports
    assert exports["namespace"] == "vocab-app-production"
    assert exports["cronJobNames"] == ["vocab-app-postgres-backup"]
    assert exports["pvcNames"] == ["vocab-app-postgres-backup-pvc"]
    assert exports["bucketName"] == "vocab-app-production-postgres-backups"
    assert exports["writerRoleArn"].endswith(":role/vocab-app-production-postgres-backups-writer")
    assert exports["readerRoleArn"].endswith(":role/vocab-app-production-postgres-backups-reader")
    assert exports["restoreServiceAccount"] == "vocab-app-postgres-restore"


def test_cronjob_is_safe_to_leave_alone(runs: dict[str, ProgramRun]) -> None:
    cronjob = backup_cronjob(runs["production"].resources)
    spec = cronjob.inputs["spec"]
    assert cronjob.inputs["metadata"]["name"] == "vocab-app-postgres-backup"
    assert spec["schedule"] == "0 2 * * *" and spec["timeZone"] == "Etc/UTC"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] > 0
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0 and job["backoffLimit"] >= 0
    # Logs must outlive the Jobs the history keeps (one run a day).
    assert job["ttlSecondsAfterFinished"] > spec["successfulJobsHistoryLimit"] * 86400
    assert spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]["app"] == "postgres-backup"


def test_pods_run_restricted(runs: dict[str, ProgramRun]) -> None:
    pod = pod_spec(backup_cronjob(runs["staging"].resources))
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "vocab-app-postgres-backup"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000 and pod["securityContext"]["fsGroup"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    containers = pod["initContainers"] + pod["containers"]
    assert [c["name"] for c in containers] == ["backup", "upload"]
    for c in containers:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}
        assert set(c["resources"]["requests"]) == {"cpu", "memory"}
        assert "@sha256:" in c["image"] and c["imagePullPolicy"] == "Always"
        assert c["command"][0] == "bash"  # the aws-cli image's ENTRYPOINT is aws
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert "/tmp" in mounts  # noqa: S108 (writable scratch on a read-only root)
    backup, upload = containers
    assert backup["image"].startswith("postgres:16")
    assert upload["image"].startswith("amazon/aws-cli:2")
    assert "/home/aws" in {m["mountPath"] for m in upload["volumeMounts"]}


def test_containers_follow_the_contract(runs: dict[str, ProgramRun]) -> None:
    pod = pod_spec(backup_cronjob(runs["production"].resources))
    backup = env_of(pod["initContainers"][0])
    assert backup["PGHOST"] == "vocab-app-postgres" and backup["PGPORT"] == "5432"
    assert backup["PGDATABASE"] == "vocab_app_production"
    assert backup["PGSSLMODE"] == "require"
    assert backup["PGPASSWORD_FILE"] == "/etc/pgbackup/db/password"
    assert "PGPASSWORD" not in backup  # the password only ever as a file
    assert backup["BACKUP_DIR"] == "/backups"
    assert (backup["RETENTION_DAYS"], backup["KEEP_MIN"], backup["COMPRESSION"]) == (
        "30",
        "7",
        "auto",
    )
    assert backup["RETAIN_UNTIL_OFFSITE"] == "1"  # the upload container marks what it sent
    assert backup["CPU_LIMIT"]["resourceFieldRef"]["resource"] == "limits.cpu"
    secret = next(v for v in pod["volumes"] if v["name"] == "db-password")["secret"]
    assert secret["secretName"] == "vocab-app-postgres"
    assert secret["items"] == [{"key": "postgres-password", "path": "password"}]
    upload = env_of(pod["containers"][0])
    assert upload["S3_BUCKET"] == "vocab-app-production-postgres-backups"
    assert upload["S3_PREFIX"] == "postgres" and upload["S3_SSE"] == "aws:kms"
    assert upload["S3_KMS_KEY_ID"].startswith("arn:aws:kms:")
    assert upload["S3_ENDPOINT_URL"] == ""
    assert not any("AWS_SECRET_ACCESS_KEY" in k for k in upload)


def test_scripts_configmap_carries_the_tested_files(runs: dict[str, ProgramRun]) -> None:
    from infra.components.scripts_configmap import read_scripts

    configmap = one(runs["staging"].resources, "kubernetes:core/v1:ConfigMap")
    assert configmap.inputs["metadata"]["name"] == "vocab-app-postgres-backup-script"
    assert configmap.inputs["data"] == read_scripts()
    assert {"backup.sh", "upload.sh", "common.sh"} <= set(configmap.inputs["data"])


def test_restore_role_is_exactly_what_restores_use(runs: dict[str, ProgramRun]) -> None:
    resources = runs["staging"].resources
    role = one(resources, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    granted = {
        (tuple(r["apiGroups"]), tuple(r["resources"]), tuple(sorted(r["verbs"])))
        for r in role.inputs["rules"]
    }
    assert granted == {
        (("batch",), ("cronjobs",), ("get",)),
        (("batch",), ("jobs",), ("create", "delete", "get", "list", "watch")),
        (("",), ("pods",), ("get", "list")),
        (("",), ("pods/log",), ("get",)),
        (("apps",), ("deployments",), ("get",)),
        (("apps",), ("deployments/scale",), ("get", "patch")),
    }
    text = json.dumps(role.inputs["rules"])
    assert "*" not in text and "secrets" not in text and "pods/exec" not in text
    binding = one(resources, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    subjects = {(s["kind"], s["name"]) for s in binding.inputs["subjects"]}
    assert subjects == {
        ("ServiceAccount", "vocab-app-postgres-restore"),
        ("Group", "vocab-app-operators"),
    }


def test_service_accounts_carry_irsa_and_no_token(runs: dict[str, ProgramRun]) -> None:
    accounts = only(runs["production"].resources, "kubernetes:core/v1:ServiceAccount")
    by_name = {a.inputs["metadata"]["name"]: a.inputs for a in accounts}
    for name, role in (
        ("vocab-app-postgres-backup", "writer"),
        ("vocab-app-postgres-restore", "reader"),
    ):
        assert by_name[name]["automountServiceAccountToken"] is False
        arn = by_name[name]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        assert arn.endswith(f"postgres-backups-{role}")
    # The drill only reads: it never runs with the writer's identity.
    (drill,) = [
        c
        for c in only(runs["production"].resources, CRONJOB)
        if "drill" in c.inputs["metadata"]["name"]
    ]
    assert pod_spec(drill)["serviceAccountName"] == "vocab-app-postgres-restore"


def _policy(resource: Any, key: str = "policy") -> dict[str, Any]:
    return json.loads(resource.inputs[key])


def test_bucket_is_hardened(runs: dict[str, ProgramRun]) -> None:
    resources = runs["production"].resources
    bucket = one(resources, BUCKET)
    assert bucket.inputs["bucket"] == "vocab-app-production-postgres-backups"
    assert bucket.inputs["objectLockEnabled"] is True
    assert one(resources, "aws:kms/key:Key").inputs["enableKeyRotation"] is True
    versioning = one(resources, "aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    sse = one(
        resources,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    ).inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert sse["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"].startswith("arn:aws:kms")
    assert sse["bucketKeyEnabled"] is True
    block = one(resources, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k]
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    ownership = one(resources, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    (deny,) = _policy(one(resources, "aws:s3/bucketPolicy:BucketPolicy"))["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"]["Bool"]["aws:SecureTransport"] == "false"
    lock = one(
        resources, "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
    ).inputs["rule"]["defaultRetention"]
    assert lock == {"mode": "COMPLIANCE", "days": 90}


def test_lifecycle_expires_everything_it_should(runs: dict[str, ProgramRun]) -> None:
    for stack, run in runs.items():
        lifecycle = one(
            run.resources, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
        )
        expire, markers = lifecycle.inputs["rules"]
        assert expire["expiration"]["days"] == 90
        assert expire["noncurrentVersionExpiration"]["noncurrentDays"] >= 1
        assert expire["abortIncompleteMultipartUpload"]["daysAfterInitiation"] >= 1
        assert markers["expiration"]["expiredObjectDeleteMarker"] is True
        assert ("transitions" in expire) == (stack == "production")


def test_writer_cannot_delete_and_reader_only_reads(runs: dict[str, ProgramRun]) -> None:
    resources = runs["staging"].resources
    policies = {
        p.name.rsplit("-", 2)[-2]: _policy(p)
        for p in only(resources, "aws:iam/rolePolicy:RolePolicy")
    }
    writer = {a for s in policies["writer"]["Statement"] for a in s["Action"]}
    assert writer == {"s3:ListBucket", "s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt"}
    reader = {a for s in policies["reader"]["Statement"] for a in s["Action"]}
    assert reader == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt"}
    # Staging may read production's backups (the guide's rehearsal), read-only.
    resources_read = json.dumps(policies["reader"])
    assert "vocab-app-production-postgres-backups/postgres/*" in resources_read
    roles = {
        r.inputs["name"]: _policy(r, "assumeRolePolicy")
        for r in only(resources, "aws:iam/role:Role")
    }
    trust = roles["vocab-app-staging-postgres-backups-writer"]["Statement"][0]
    subject = next(iter(trust["Condition"]["StringEquals"].items()))
    assert subject[1] == "system:serviceaccount:vocab-app-staging:vocab-app-postgres-backup"


def test_access_key_mode_keeps_keys_in_secrets() -> None:
    resources = collect_resources("staging", {"offsite.credentials": {"mode": "accessKey"}})
    assert not only(resources, "aws:iam/role:Role")
    assert len(only(resources, "aws:iam/accessKey:AccessKey")) == 2
    secrets = {
        s.inputs["metadata"]["name"]: s.inputs for s in only(resources, "kubernetes:core/v1:Secret")
    }
    assert set(secrets) == {"vocab-app-postgres-backup-aws", "vocab-app-postgres-restore-aws"}
    assert secrets["vocab-app-postgres-backup-aws"]["stringData"]["credentials"] == "[secret]"
    upload = pod_spec(backup_cronjob(resources))["containers"][0]
    assert env_of(upload)["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/pgbackup/aws/credentials"
    accounts = only(resources, "kubernetes:core/v1:ServiceAccount")
    assert all(not a.inputs["metadata"].get("annotations") for a in accounts)


def test_several_databases_get_their_own_objects() -> None:
    run = run_program(
        "production",
        {"databases": [{"name": "vocab_app_production"}, {"name": "audit"}]},
    )
    names = sorted(c.inputs["metadata"]["name"] for c in only(run.resources, CRONJOB))
    assert names == [
        "vocab-app-postgres-backup",
        "vocab-app-postgres-backup-audit",
        "vocab-app-postgres-restore-drill",
        "vocab-app-postgres-restore-drill-audit",
    ]
    assert run.exports["pvcNames"] == [
        "vocab-app-postgres-backup-pvc",
        "vocab-app-postgres-backup-pvc-audit",
    ]
    role = one(run.resources, "kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert sorted(role.inputs["rules"][0]["resourceNames"]) == names


def test_helm_pvc_is_adopted_when_asked() -> None:
    resources = collect_resources("staging", {"databases[0].importPvc": True})
    pvc = one(resources, "kubernetes:core/v1:PersistentVolumeClaim")
    assert pvc.import_id == "vocab-app-staging/vocab-app-postgres-backup-pvc"
    assert pvc.inputs["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_explicit_cluster_survives_a_lost_one() -> None:
    resources = collect_resources("production", {"kubeconfig": "apiVersion: v1\nkind: Config\n"})
    provider = one(resources, "pulumi:providers:kubernetes")
    assert provider.inputs["deleteUnreachable"] in (True, "true")
    cronjob = backup_cronjob(resources)
    assert cronjob.provider is not None and provider.urn in cronjob.provider


def test_repeated_runs_in_one_process_agree() -> None:
    first = collect_resources("staging")
    second = collect_resources("staging")
    assert [(r.type, r.name, r.inputs) for r in first] == [
        (r.type, r.name, r.inputs) for r in second
    ]
