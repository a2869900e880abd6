"""The four stacks, composed from the builders, for any environment.

Apply order (each plans against what the previous one created):
  cluster       EKS + VPC + node pools + IAM (community modules); skipped with a kube context
  platform      namespaces and the pinned Helm releases (Istio, NATS, CloudNativePG, Jaeger, KEDA)
  platform-crs  objects whose CRDs a platform chart installs: the CloudNativePG `Cluster`
  app           everything of ours, plus KEDA's ScaledObject and the Istio policy of istio/
"""

from __future__ import annotations

import ipaddress
import itertools
import math
from dataclasses import dataclass
from typing import Any

from cdktf import App, TerraformProvider, TerraformStack

from meshkit.broker_layout import JOBS_STREAM
from services.classifier.queue import CONSUMER
from weather_deploy import builders, charts, workloads
from weather_deploy.config import Environment, ServiceName
from weather_deploy.contract import (
    APP_NAMESPACE,
    CANARY,
    CLASSIFIER_CANARY,
    DATA_NAMESPACE,
    DATABASE_CLUSTER,
    DATABASE_NAME,
    DATABASE_OWNER,
    DATABASE_RUNTIME_ROLE,
    INGRESS_NAMESPACE,
    MESH_NAMESPACES,
    MIGRATIONS_JOB,
    NATS_NAMESPACE,
    NATS_RELEASE,
    PLATFORM_NAMESPACES,
    UI,
    ServiceHost,
    pod_labels,
)
from weather_deploy.flows import (
    ANYWHERE,
    INTERNET,
    KUBE_APISERVER,
    load_flow_table,
    network_policies,
)
from weather_deploy.istio_objects import (
    FLOW_TABLE,
    ISTIO_DIR,
    load_istio_objects,
    tls_credentials,
    with_canary_weight,
    with_domain,
    with_trace_sampling,
)
from weather_deploy.service_config import service_environment

SERVICES: tuple[ServiceName, ...] = ("dispatcher", "classifier", "reporting")
UI_PORT = 8080  # CONTRACT.md: ui:8080 (http)
POSTGRES_PORT = 5432  # CloudNativePG's `-rw` Service port
DATABASE = ServiceHost(f"{DATABASE_CLUSTER}-rw", DATA_NAMESPACE, POSTGRES_PORT)
DATABASE_OWNER_SECRET = f"{DATABASE_CLUSTER}-owner"
DATABASE_RUNTIME_SECRET = f"{DATABASE_CLUSTER}-runtime"
MIGRATE_COMMAND = ["python3", "-m", "services.reporting.migrator"]
CLASSIFIER_LAG_PER_REPLICA = 64
# The provider's default computed fields, plus the replica count the HPA or KEDA owns.
AUTOSCALED_FIELDS = ("metadata.labels", "metadata.annotations", "spec.replicas")
# The Terraform variables a user sets (TF_VAR_<name>): secrets never enter the repo.
DATABASE_PASSWORD_VARIABLE = "database_password"
PAGE_TOKEN_SECRET_VARIABLE = "page_token_secret"


@dataclass(frozen=True)
class Target:
    """Where the platform and app stacks deploy: the `cluster` stack's EKS, or an existing
    cluster by kubeconfig context (kind, k3d, minikube, any cloud)."""

    kube_context: str | None = None
    kubeconfig: str = "~/.kube/config"
    # The API server's address block there (KUBE_API_CIDR): the environment's default, the
    # VPC of the `cluster` stack, says nothing about a cluster we did not create.
    kube_api_cidr: str | None = None


@dataclass(frozen=True)
class ClusterAccess:
    """How providers reach the cluster: the `cluster` stack's outputs, or a kube context."""

    settings: dict[str, Any]


def _state(stack: TerraformStack, env: Environment, target: Target, name: str) -> None:
    if target.kube_context:
        builders.local_state(stack, path=f"../../../.state/{env.name}/{name}.tfstate")
    else:
        builders.s3_state(
            stack,
            bucket=env.cluster.state_bucket,
            key=f"weather-mesh/{env.name}/{name}.tfstate",
            region=env.cluster.region,
        )


def _subnets(cidr: str, prefix: int, *, first: int, count: int) -> list[str]:
    subnets = itertools.islice(ipaddress.ip_network(cidr).subnets(new_prefix=prefix), first, None)
    return [str(subnet) for subnet in itertools.islice(subnets, count)]


def cluster_stack(app: App, env: Environment) -> tuple[TerraformStack, ClusterAccess]:
    """The managed cluster: terraform-aws-modules' VPC and EKS modules, pinned by major."""
    stack = builders.new_stack(app, "cluster")
    _state(stack, env, Target(), "cluster")
    cluster = env.cluster
    builders.provider(
        stack,
        builders.AWS,
        {
            "region": cluster.region,
            "default_tags": {"tags": {"project": "weather-mesh", "environment": env.name}},
        },
    )
    zones = list(cluster.availability_zones)
    vpc = builders.module(
        stack,
        "vpc",
        source="terraform-aws-modules/vpc/aws",
        version="~> 6.0",
        inputs={
            "name": cluster.name,
            "cidr": cluster.vpc_cidr,
            "azs": zones,
            # one large private subnet per zone for the nodes and pods (/20 each, from the
            # start of the range), one small public one for the load balancers (/24, from .200)
            "private_subnets": _subnets(cluster.vpc_cidr, 20, first=0, count=len(zones)),
            "public_subnets": _subnets(cluster.vpc_cidr, 24, first=200, count=len(zones)),
            "enable_nat_gateway": True,
            "single_nat_gateway": env.name != "prod",
            "public_subnet_tags": {"kubernetes.io/role/elb": "1"},
            "private_subnet_tags": {"kubernetes.io/role/internal-elb": "1"},
        },
    )
    eks = builders.module(
        stack,
        "eks",
        source="terraform-aws-modules/eks/aws",
        version="~> 21.0",
        inputs={
            "name": cluster.name,
            "kubernetes_version": cluster.kubernetes_version,
            "vpc_id": builders.module_output(vpc, "vpc_id"),
            "subnet_ids": builders.module_list_output(vpc, "private_subnets"),
            "endpoint_public_access": True,
            "enable_cluster_creator_admin_permissions": True,
            "enable_irsa": True,
            "addons": {
                "coredns": {},
                "kube-proxy": {},
                "vpc-cni": {"before_compute": True},
                "eks-pod-identity-agent": {"before_compute": True},
                "aws-ebs-csi-driver": {},  # PVCs of NATS JetStream and PostgreSQL
            },
            "eks_managed_node_groups": {
                name: {
                    "instance_types": list(pool.instance_types),
                    "min_size": pool.min_size,
                    "desired_size": pool.desired_size,
                    "max_size": pool.max_size,
                    "disk_size": pool.disk_size_gib,
                    "iam_role_additional_policies": {
                        "ebs": "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
                    },
                }
                for name, pool in cluster.node_pools.items()
            },
        },
    )
    endpoint = builders.module_output(eks, "cluster_endpoint")
    ca = builders.module_output(eks, "cluster_certificate_authority_data")
    name = builders.module_output(eks, "cluster_name")
    builders.output(stack, "cluster_name", name)
    builders.output(stack, "cluster_endpoint", endpoint)
    access = ClusterAccess(
        settings={
            "host": endpoint,
            "cluster_ca_certificate": builders.base64_decode(ca),
            "exec": {
                "api_version": "client.authentication.k8s.io/v1beta1",
                "command": "aws",
                "args": ["eks", "get-token", "--cluster-name", name, "--region", cluster.region],
            },
        }
    )
    return stack, access


def _providers(
    stack: TerraformStack, access: ClusterAccess
) -> tuple[TerraformProvider, TerraformProvider]:
    kubernetes = builders.provider(stack, builders.KUBERNETES, access.settings)
    helm = builders.provider(stack, builders.HELM, {"kubernetes": access.settings})
    return kubernetes, helm


def kube_context_access(target: Target) -> ClusterAccess:
    return ClusterAccess(
        settings={"config_path": target.kubeconfig, "config_context": target.kube_context}
    )


def platform_secret(
    name: str, namespace: str, secret_type: str, string_data: dict[str, str]
) -> dict[str, Any]:
    """A Secret outside the app namespace (a platform component's, or the edge's)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": {"name": name, "namespace": namespace},
        "stringData": string_data,
    }


def basic_auth_secret(name: str, namespace: str, *, username: str, password: str) -> dict[str, Any]:
    return platform_secret(
        name, namespace, "kubernetes.io/basic-auth", {"username": username, "password": password}
    )


def nats_users_secret(passwords: dict[str, str]) -> dict[str, Any]:
    """The NATS server's copy of every service user's password (key: the user)."""
    return platform_secret(charts.NATS_USERS_SECRET, NATS_NAMESPACE, "Opaque", passwords)


def platform_stack(
    app: App, env: Environment, target: Target, access: ClusterAccess
) -> tuple[TerraformStack, dict[str, str]]:
    """The platform, and the tokens of the NATS users' passwords (user -> password), which
    the app stack reads back through this stack's state for the services' own Secrets."""
    stack = builders.new_stack(app, "platform")
    _state(stack, env, target, "platform")
    kubernetes, helm = _providers(stack, access)
    random = builders.provider(stack, builders.RANDOM, {})
    namespaces = {
        name: builders.kubernetes_object(
            stack, workloads.namespace(name, mesh=name in MESH_NAMESPACES), kubernetes=kubernetes
        )
        for name in PLATFORM_NAMESPACES
    }
    nats_passwords = {
        user: builders.random_password(stack, f"nats-password-{user}", random=random)
        for user in charts.nats_users()
    }
    nats_secret = builders.kubernetes_object(
        stack,
        nats_users_secret(nats_passwords),
        kubernetes=kubernetes,
        depends_on=[namespaces[NATS_NAMESPACE]],
    )
    installed: list[Any] = []
    for release in charts.releases(env):
        # Istio first: later releases run pods with sidecars, which need istiod's webhook.
        needs = [nats_secret] if release.name == NATS_RELEASE else []
        installed.append(
            builders.helm_release(
                stack,
                release.name,
                namespace=release.namespace,
                chart=release.chart,
                values=release.values,
                helm=helm,
                depends_on=[namespaces[release.namespace], *installed[:2], *needs],
            )
        )
    return stack, nats_passwords


def database_cluster(env: Environment) -> dict[str, Any]:
    """The CloudNativePG `Cluster`: 3 instances, owner password from a Terraform variable.

    The owner (bootstrap) owns the schema and runs the migrations; the runtime role reporting
    serves with is a managed role the operator creates and keeps in line with its Secret. Its
    rights on the tables come from the migrations, as in the local mesh."""
    spec: dict[str, Any] = {
        "instances": 3,
        "storage": {"size": env.postgres_storage},
        "bootstrap": {
            "initdb": {
                "database": DATABASE_NAME,
                "owner": DATABASE_OWNER,
                "secret": {"name": DATABASE_OWNER_SECRET},
            }
        },
        "managed": {
            "roles": [
                {
                    "name": DATABASE_RUNTIME_ROLE,
                    "ensure": "present",
                    "login": True,
                    "superuser": False,
                    "createdb": False,
                    "createrole": False,
                    "inherit": True,
                    "passwordSecret": {"name": DATABASE_RUNTIME_SECRET},
                }
            ]
        },
        "inheritedMetadata": {"labels": {"app.kubernetes.io/name": DATABASE_CLUSTER}},
        "serviceAccountName": DATABASE_CLUSTER,
    }
    if env.postgres_backups:
        spec["backup"] = {
            "retentionPolicy": env.postgres_backups.retention_policy,
            "barmanObjectStore": {
                "destinationPath": env.postgres_backups.destination_path,
                "s3Credentials": {"inheritFromIAMRole": True},
                "wal": {"compression": "gzip"},
            },
        }
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": DATABASE_CLUSTER, "namespace": DATA_NAMESPACE},
        "spec": spec,
    }


def scheduled_backup(env: Environment) -> dict[str, Any] | None:
    if not env.postgres_backups:
        return None
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "ScheduledBackup",
        "metadata": {"name": f"{DATABASE_CLUSTER}-daily", "namespace": DATA_NAMESPACE},
        "spec": {
            "schedule": env.postgres_backups.schedule,
            "backupOwnerReference": "self",
            "cluster": {"name": DATABASE_CLUSTER},
        },
    }


def platform_crs_stack(
    app: App, env: Environment, target: Target, access: ClusterAccess
) -> tuple[TerraformStack, str]:
    """The database, and the token of the runtime role's password (for reporting's URL)."""
    stack = builders.new_stack(app, "platform-crs")
    _state(stack, env, target, "platform-crs")
    kubernetes, _ = _providers(stack, access)
    random = builders.provider(stack, builders.RANDOM, {})
    password = builders.variable(
        stack,
        DATABASE_PASSWORD_VARIABLE,
        description="Password of the PostgreSQL owner of the weather database.",
        sensitive=True,
    )
    runtime_password = builders.random_password(stack, "database-runtime-password", random=random)
    role_secrets = [
        builders.kubernetes_object(
            stack,
            basic_auth_secret(name, DATA_NAMESPACE, username=role, password=role_password),
            kubernetes=kubernetes,
        )
        for name, role, role_password in (
            (DATABASE_OWNER_SECRET, DATABASE_OWNER, password),
            (DATABASE_RUNTIME_SECRET, DATABASE_RUNTIME_ROLE, runtime_password),
        )
    ]
    builders.kubernetes_object(
        stack,
        database_cluster(env),
        kubernetes=kubernetes,
        depends_on=role_secrets,
    )
    backup = scheduled_backup(env)
    if backup:
        builders.kubernetes_object(stack, backup, kubernetes=kubernetes)
    return stack, runtime_password


@dataclass(frozen=True)
class TlsVariables:
    """Tokens of the Terraform variables holding the edge's certificate and key (PEM)."""

    certificate: str
    private_key: str


@dataclass(frozen=True)
class ServiceSecrets:
    """Tokens of what feeds the services' secret settings: Terraform variables, and the
    passwords the platform stacks generate (read through their state)."""

    database_password: str  # the owner's, which runs the migrations
    runtime_database_password: str  # the runtime role's, which reporting serves with
    page_token_secret: str
    nats_passwords: dict[str, str]  # NATS user (the service) -> its password


def external_cidrs(env: Environment) -> dict[str, str]:
    """Where the flow table's external workloads are, for the NetworkPolicy ipBlocks."""
    return {INTERNET: ANYWHERE, KUBE_APISERVER: env.api_server_cidr}


def app_objects(
    env: Environment,
    *,
    image_tag: str,
    canary_tag: str,
    secrets: ServiceSecrets,
    tls: TlsVariables,
) -> list[dict[str, Any]]:
    """Every object of the app stack, in apply order (the migrations Job before reporting)."""
    image = workloads.ServiceImage(env.image_registry, image_tag)
    objects: list[dict[str, Any]] = [workloads.namespace(APP_NAMESPACE, mesh=True)]
    for service in SERVICES:
        service_env = service_environment(service, workloads.cluster_settings(env, service))
        if service in secrets.nats_passwords:
            objects.append(
                workloads.secret(
                    workloads.nats_password_secret(service),
                    {workloads.NATS_PASSWORD_KEY: secrets.nats_passwords[service]},
                )
            )
        secret_name = None
        if service_env.secret_variables:
            secret_name = service
            objects.append(
                workloads.secret(
                    secret_name,
                    {
                        variable: _secret_value(field, secrets)
                        for variable, field in service_env.secret_variables.items()
                    },
                )
            )
        if service == "reporting":
            objects += [
                workloads.service_account(MIGRATIONS_JOB),
                workloads.migrations_job(
                    MIGRATIONS_JOB,
                    version=image_tag,
                    image=image.of(service),
                    command=MIGRATE_COMMAND,
                    secret_name=service,
                    env=env,
                ),
            ]
        objects += _service_objects(env, service, service_env, image, secret_name)
        if service == "classifier":
            objects += _canary_objects(env, image, canary_tag)
    objects += workloads.static_site(UI, image=image.of(UI), port=UI_PORT, env=env)
    objects += network_policies(
        load_flow_table(ISTIO_DIR / FLOW_TABLE), external_cidrs=external_cidrs(env)
    )
    istio = with_canary_weight(load_istio_objects(ISTIO_DIR), env.canary_weight)
    sampling_percent = round(env.trace_sampling_ratio * 100, 4)
    istio = with_trace_sampling(with_domain(istio, env.domain), sampling_percent)
    objects += [_tls_secret(name, tls) for name in sorted(tls_credentials(istio))]
    return objects + istio


def _tls_secret(name: str, tls: TlsVariables) -> dict[str, Any]:
    """The edge's certificate: a Secret in the gateway's namespace, from Terraform variables."""
    return platform_secret(
        name,
        INGRESS_NAMESPACE,
        "kubernetes.io/tls",
        {"tls.crt": tls.certificate, "tls.key": tls.private_key},
    )


def database_url(role: str, password: str) -> str:
    return f"postgresql://{role}:{builders.url_encode(password)}@{DATABASE.address}/{DATABASE_NAME}"


def _secret_value(field: str, secrets: ServiceSecrets) -> str:
    """The value of a secret setting, by its field name in the settings class."""
    if field == "database_url":  # reporting serves as the runtime role: rows, no DDL
        return database_url(DATABASE_RUNTIME_ROLE, secrets.runtime_database_password)
    if field == "migration_database_url":  # the owner applies the migrations
        return database_url(DATABASE_OWNER, secrets.database_password)
    if field == "page_token_secret":
        return secrets.page_token_secret
    raise ValueError(f"nothing feeds the secret setting {field}")


def _nats_volumes(service_env: Any) -> tuple[dict[str, Any], ...]:
    volume = workloads.nats_password_volume(service_env)
    return (volume,) if volume else ()


def _service_objects(
    env: Environment,
    service: ServiceName,
    service_env: Any,
    image: workloads.ServiceImage,
    secret_name: str | None,
) -> list[dict[str, Any]]:
    container = workloads.service_container(
        service,
        service_env,
        env=env,
        image=image.of(service),
        config_map_name=service,
        secret_name=secret_name,
    )
    objects = [
        workloads.service_account(service),
        workloads.config_map(service, service_env.config),
        workloads.deployment(
            service,
            labels=pod_labels(service),
            replicas=env.workload(service).replicas,
            service_account_name=service,
            container=container,
            grace_seconds=workloads.termination_grace(service_env),
            volumes=_nats_volumes(service_env),
        ),
        workloads.grpc_service(service, service_env),
        workloads.disruption_budget(service),
    ]
    if service == "classifier":
        objects.append(_classifier_scaler(env))
    else:
        objects.append(workloads.cpu_autoscaler(service, env.workload(service)))
    return objects


# Where the code defines the classifier's work queue: (module of JOBS_STREAM, module of
# CONSUMER). The second pair is the layout before issue #10 moved them; drop it once merged.
def classifier_queue() -> tuple[str, str]:
    """The stream and durable consumer the classifier pulls jobs from, read from its code."""
    return str(JOBS_STREAM), str(CONSUMER)


def _classifier_scaler(env: Environment) -> dict[str, Any]:
    stream, consumer = classifier_queue()
    return workloads.queue_lag_scaler(
        "classifier",
        env.classifier,
        stream=stream,
        consumer=consumer,
        lag_per_replica=CLASSIFIER_LAG_PER_REPLICA,
    )


def canary_replicas(env: Environment) -> int:
    """The canary's share of the queue = its share of the consumers (0 when w = 0)."""
    if env.canary_weight == 0:
        return 0
    return max(1, math.ceil(env.classifier.replicas * env.canary_weight / 100))


def _canary_objects(
    env: Environment, image: workloads.ServiceImage, canary_tag: str
) -> list[dict[str, Any]]:
    overrides = dict(workloads.cluster_settings(env, "classifier"))
    if env.canary_model_path:
        overrides["model_path"] = env.canary_model_path
    if env.canary_model_version:
        overrides["model_version"] = env.canary_model_version
    service_env = service_environment("classifier", overrides)
    name = CLASSIFIER_CANARY
    container = workloads.service_container(
        "classifier",
        service_env,
        env=env,
        image=workloads.ServiceImage(image.registry, canary_tag).of("classifier"),
        config_map_name=name,
        secret_name=None,
    )
    return [
        workloads.config_map(name, service_env.config),
        workloads.deployment(
            name,
            labels=pod_labels("classifier", CANARY),
            replicas=canary_replicas(env),
            service_account_name="classifier",
            container=container,
            grace_seconds=workloads.termination_grace(service_env),
            volumes=_nats_volumes(service_env),
        ),
    ]


@dataclass(frozen=True)
class GeneratedPasswords:
    """Tokens of the passwords the platform stacks generate, which the app stack reads."""

    nats: dict[str, str]
    database_runtime: str


def app_stack(
    app: App,
    env: Environment,
    target: Target,
    access: ClusterAccess,
    default_image_tag: str,
    passwords: GeneratedPasswords,
) -> TerraformStack:
    stack = builders.new_stack(app, "app")
    _state(stack, env, target, "app")
    kubernetes, _ = _providers(stack, access)
    image_tag = builders.variable(
        stack, "image_tag", description="Tag of the weather-mesh images.", default=default_image_tag
    )
    canary_tag = builders.variable(
        stack,
        "canary_image_tag",
        description="Tag of the classifier-canary image.",
        default=env.canary_image_tag or default_image_tag,
    )
    password = builders.variable(
        stack,
        DATABASE_PASSWORD_VARIABLE,
        description="Password of the PostgreSQL owner (the same as the platform-crs stack's).",
        sensitive=True,
    )
    created: list[Any] = []
    migrations = None
    tls = TlsVariables(
        certificate=builders.variable(
            stack, "tls_certificate", description="PEM chain of the public host.", sensitive=True
        ),
        private_key=builders.variable(
            stack, "tls_private_key", description="PEM key of the public host.", sensitive=True
        ),
    )
    page_token_secret = builders.variable(
        stack,
        PAGE_TOKEN_SECRET_VARIABLE,
        description=(
            "Key (32+ characters) that authenticates reporting's ListJobs page tokens; "
            "without it every replica would use the public development key."
        ),
        sensitive=True,
    )
    secrets = ServiceSecrets(
        database_password=password,
        runtime_database_password=passwords.database_runtime,
        page_token_secret=page_token_secret,
        nats_passwords=passwords.nats,
    )
    for obj in app_objects(
        env, image_tag=image_tag, canary_tag=canary_tag, secrets=secrets, tls=tls
    ):
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "Job":
            after = list(created)  # its ServiceAccount and Secret, and the namespace
        elif kind == "Deployment" and name == "reporting" and migrations is not None:
            after = [created[0], migrations]  # roll out only once the schema is migrated
        else:
            after = created[:1]  # the namespace
        resource = builders.kubernetes_object(
            stack,
            obj,
            kubernetes=kubernetes,
            depends_on=after,
            # one id across versions (the Job's name carries the image tag)
            resource_id=f"job-{APP_NAMESPACE}-{MIGRATIONS_JOB}" if kind == "Job" else None,
            computed_fields=AUTOSCALED_FIELDS if kind == "Deployment" and name in SERVICES else (),
        )
        if kind == "Job":
            builders.wait_for_condition(resource, "Complete")
            migrations = resource
        created.append(resource)
    return stack


def build(
    app: App, env: Environment, target: Target, default_image_tag: str
) -> dict[str, TerraformStack]:
    """Every stack of `env` on `target`, with their apply order recorded as dependencies."""
    stacks: dict[str, TerraformStack] = {}
    if target.kube_api_cidr:
        env = env.model_copy(update={"kube_api_cidr": target.kube_api_cidr})
    if target.kube_context:
        if env.kube_api_cidr is None:
            raise ValueError(
                f"KUBE_CONTEXT={target.kube_context}: set KUBE_API_CIDR to the address block "
                "of the cluster's API server (`kubectl get endpoints kubernetes`), which the "
                "PostgreSQL instances' NetworkPolicy must reach"
            )
        access = kube_context_access(target)
    else:
        stacks["cluster"], access = cluster_stack(app, env)
    stacks["platform"], nats_passwords = platform_stack(app, env, target, access)
    stacks["platform-crs"], runtime_password = platform_crs_stack(app, env, target, access)
    passwords = GeneratedPasswords(nats=nats_passwords, database_runtime=runtime_password)
    stacks["app"] = app_stack(app, env, target, access, default_image_tag, passwords)
    order = list(stacks.values())
    for earlier, later in itertools.pairwise(order):
        builders.depends(later, earlier)
    return stacks
