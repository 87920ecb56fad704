"""Least-privilege AWS identities for the offsite bucket: a writer for backup pods (put and list,
never delete) and a reader for restore pods (get and list). They reach the pods by IRSA (an IAM
role trusted for exactly one ServiceAccount) or, where the cluster has no OIDC provider, by an
access key kept as a Kubernetes Secret holding an AWS shared-credentials file."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import names, policies
from infra.validate import ConfigError


@dataclass(frozen=True)
class ReadSource:
    """A bucket the reader may read: the stack's own, or another stack's granted in config."""

    bucket_arn: pulumi.Input[str]
    prefix: str
    kms_key_arn: pulumi.Input[str] | None


@dataclass(frozen=True)
class OffsiteCredentialsArgs:
    bucket_name: str
    bucket_arn: pulumi.Input[str]
    prefix: str
    kms_key_arn: pulumi.Input[str]
    namespace: str
    mode: str  # "irsa" | "accessKey"
    backup_service_account: str
    restore_service_account: str
    oidc_provider_arn: str | None = None
    oidc_issuer: str | None = None
    writer_secret_name: str = ""
    reader_secret_name: str = ""
    extra_read: list[ReadSource] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("irsa", "accessKey"):
            raise ConfigError(f"credentials mode {self.mode!r} is unknown", "use irsa or accessKey")
        if self.mode == "irsa" and not (self.oidc_provider_arn and self.oidc_issuer):
            raise ConfigError("irsa needs the OIDC provider ARN and issuer", "set both in config")
        if self.mode == "accessKey" and not (self.writer_secret_name and self.reader_secret_name):
            raise ConfigError("accessKey needs the Secret names", "set accessKeySecret")


def _credentials_file(key_id: str, secret: str) -> str:
    return f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"


class OffsiteCredentials(pulumi.ComponentResource):
    writer_arn: pulumi.Output[str]
    reader_arn: pulumi.Output[str]
    # IRSA mode: the role ARNs for the ServiceAccount annotations; None in accessKey mode.
    writer_role_arn: pulumi.Output[str] | None
    reader_role_arn: pulumi.Output[str] | None
    writer_secret_name: str | None
    reader_secret_name: str | None

    def __init__(
        self, name: str, args: OffsiteCredentialsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgbackup:index:OffsiteCredentials", name, None, opts)
        writer_doc = pulumi.Output.all(args.bucket_arn, args.kms_key_arn).apply(
            lambda v: policies.writer_policy(v[0], args.prefix, v[1])
        )
        sources = [ReadSource(args.bucket_arn, args.prefix, args.kms_key_arn), *args.extra_read]
        reader_doc = pulumi.Output.all(
            *[pulumi.Output.all(s.bucket_arn, s.prefix, s.kms_key_arn) for s in sources]
        ).apply(lambda rows: policies.reader_policy([(r[0], r[1], r[2]) for r in rows]))
        writer_name = names.iam_name(args.bucket_name, "writer")
        reader_name = names.iam_name(args.bucket_name, "reader")
        if args.mode == "irsa":
            assert args.oidc_provider_arn is not None and args.oidc_issuer is not None
            writer = self._role(
                name, "writer", writer_name, writer_doc, args, args.backup_service_account
            )
            reader = self._role(
                name, "reader", reader_name, reader_doc, args, args.restore_service_account
            )
            self.writer_role_arn = writer
            self.reader_role_arn = reader
            self.writer_arn, self.reader_arn = writer, reader
            self.writer_secret_name = self.reader_secret_name = None
        else:
            self.writer_arn = self._user(
                name, "writer", writer_name, writer_doc, args, args.writer_secret_name
            )
            self.reader_arn = self._user(
                name, "reader", reader_name, reader_doc, args, args.reader_secret_name
            )
            self.writer_role_arn = self.reader_role_arn = None
            self.writer_secret_name = args.writer_secret_name
            self.reader_secret_name = args.reader_secret_name
        self.register_outputs({"writer_arn": self.writer_arn, "reader_arn": self.reader_arn})

    def _role(
        self,
        name: str,
        kind: str,
        role_name: str,
        policy: pulumi.Output[str],
        args: OffsiteCredentialsArgs,
        service_account: str,
    ) -> pulumi.Output[str]:
        assert args.oidc_provider_arn is not None and args.oidc_issuer is not None
        role = aws.iam.Role(
            f"{name}-{kind}-role",
            name=role_name,
            description=f"PostgreSQL backup {kind} for {args.namespace}/{service_account}",
            assume_role_policy=policies.irsa_trust_policy(
                args.oidc_provider_arn, args.oidc_issuer, args.namespace, service_account
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            f"{name}-{kind}-policy",
            role=role.name,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role.arn

    def _user(
        self,
        name: str,
        kind: str,
        user_name: str,
        policy: pulumi.Output[str],
        args: OffsiteCredentialsArgs,
        secret_name: str,
    ) -> pulumi.Output[str]:
        user = aws.iam.User(
            f"{name}-{kind}-user", name=user_name, opts=pulumi.ResourceOptions(parent=self)
        )
        aws.iam.UserPolicy(
            f"{name}-{kind}-policy",
            user=user.name,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self),
        )
        key = aws.iam.AccessKey(
            f"{name}-{kind}-key", user=user.name, opts=pulumi.ResourceOptions(parent=self)
        )
        contents: pulumi.Output[str] = pulumi.Output.all(key.id, key.secret).apply(
            lambda v: _credentials_file(v[0], v[1])
        )
        k8s.core.v1.Secret(
            f"{name}-{kind}-secret",
            metadata={"name": secret_name, "namespace": args.namespace, "labels": args.labels},
            type="Opaque",
            string_data={"credentials": pulumi.Output.secret(contents)},  # type: ignore[arg-type]
            opts=pulumi.ResourceOptions(parent=self),
        )
        return user.arn
