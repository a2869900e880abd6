"""Environments as data: dev, staging and prod differ only in the values of one typed model.

Every stack reads an `Environment`; no stack code is copied per environment. Settings the
services themselves read (ports, limits, batching…) are NOT here: they come from each
service's settings class (see `service_config`), with per-environment overrides in
`service_overrides` that are validated by constructing that class.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EnvironmentName = Literal["dev", "staging", "prod"]
ServiceName = Literal["dispatcher", "classifier", "reporting"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Resources(_Frozen):
    """Requests and limits of one container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


class Workload(_Frozen):
    """How many of one workload run, how big, and how far the autoscaler may take it."""

    replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    resources: Resources

    @model_validator(mode="after")
    def _max_at_least_replicas(self) -> Workload:
        if self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas {self.max_replicas} < replicas {self.replicas}")
        return self


class NodePool(_Frozen):
    """One managed node group of the `cluster` stack."""

    instance_types: tuple[str, ...]
    min_size: int = Field(ge=0)
    desired_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    disk_size_gib: int = Field(default=50, ge=20)


class ManagedCluster(_Frozen):
    """The `cluster` stack: an EKS cluster with its VPC, node pools and IAM, state in S3."""

    region: str
    name: str
    kubernetes_version: str
    vpc_cidr: str
    availability_zones: tuple[str, ...] = Field(min_length=2)
    node_pools: dict[str, NodePool]
    state_bucket: str = Field(description="S3 bucket of the Terraform state (created once).")


class PostgresBackups(_Frozen):
    """Where CloudNativePG ships base backups and WAL (barman-cloud to an object store)."""

    destination_path: str = Field(pattern=r"^s3://")
    retention_policy: str = "30d"
    schedule: str = Field(default="0 0 3 * * *", description="Six-field cron (CNPG format).")


class Environment(_Frozen):
    """Everything that makes dev, staging and prod different, and nothing else."""

    name: EnvironmentName
    domain: str = Field(description="Public host name of the edge (UI and gRPC API).")
    image_registry: str = Field(description="Registry prefix of weather-mesh/<name>:<tag>.")
    cluster: ManagedCluster
    dispatcher: Workload
    classifier: Workload
    reporting: Workload
    ui: Workload
    trace_sampling_ratio: float = Field(ge=0.0, le=1.0)
    anonymous_mode: bool = Field(
        description="Demo mode: jobs may be submitted without a token (owner = none)."
    )
    canary_weight: int = Field(ge=0, le=100, description="Percent of Classify to the canary.")
    kube_api_cidr: str | None = Field(
        default=None,
        description=(
            "Address block of the Kubernetes API server's endpoints, the NetworkPolicy egress "
            "of the CloudNativePG instances (flow weather-db -> kube-apiserver). None = the "
            "cluster's VPC CIDR: EKS puts the control plane's network interfaces in the "
            "cluster's subnets. An existing cluster (KUBE_CONTEXT) gives its own "
            "(KUBE_API_CIDR, stacks.Target)."
        ),
    )
    canary_image_tag: str | None = Field(
        default=None, description="Image tag of classifier-canary; None = the stable tag."
    )
    canary_model_path: str | None = Field(
        default=None, description="Model file the canary loads (CLASSIFIER_MODEL_PATH)."
    )
    canary_model_version: str | None = Field(
        default=None,
        description=(
            "Version from the model repository the canary is pinned to (CLASSIFIER_MODEL_VERSION); "
            "None = it follows the `current` pointer like the stable classifiers."
        ),
    )
    nats_storage: str = Field(description="JetStream file store PVC size per replica.")
    postgres_storage: str = Field(description="PVC size per PostgreSQL instance.")
    postgres_backups: PostgresBackups | None = None
    service_overrides: dict[ServiceName, dict[str, str | int | float | bool]] = Field(
        default_factory=dict,
        description="Settings of the services for this environment, by field name.",
    )

    @property
    def api_server_cidr(self) -> str:
        return self.kube_api_cidr or self.cluster.vpc_cidr

    def workload(self, name: ServiceName | Literal["ui"]) -> Workload:
        workload: Workload = getattr(self, name)
        return workload


def _resources(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Resources:
    return Resources(
        cpu_request=cpu, memory_request=memory, cpu_limit=cpu_limit, memory_limit=memory_limit
    )


_SMALL = _resources("100m", "128Mi", "500m", "256Mi")
_CLASSIFIER_SMALL = _resources("500m", "1Gi", "2", "2Gi")
_CLASSIFIER_LARGE = _resources("1", "2Gi", "4", "3Gi")
_MEDIUM = _resources("250m", "256Mi", "1", "512Mi")


def _cluster(name: EnvironmentName, pool: NodePool, state_bucket: str) -> ManagedCluster:
    return ManagedCluster(
        region="eu-west-1",
        name=f"weather-mesh-{name}",
        kubernetes_version="1.33",
        vpc_cidr={"dev": "10.10.0.0/16", "staging": "10.20.0.0/16", "prod": "10.30.0.0/16"}[name],
        availability_zones=("eu-west-1a", "eu-west-1b", "eu-west-1c"),
        node_pools={"general": pool},
        state_bucket=state_bucket,
    )


ENVIRONMENTS: dict[EnvironmentName, Environment] = {
    "dev": Environment(
        name="dev",
        domain="weather.dev.example.com",
        image_registry="registry.example.com",
        cluster=_cluster(
            "dev",
            NodePool(instance_types=("t3.large",), min_size=3, desired_size=3, max_size=4),
            "weather-mesh-tfstate-dev",
        ),
        dispatcher=Workload(replicas=1, max_replicas=2, resources=_SMALL),
        classifier=Workload(replicas=1, max_replicas=2, resources=_CLASSIFIER_SMALL),
        reporting=Workload(replicas=1, max_replicas=2, resources=_SMALL),
        ui=Workload(replicas=1, max_replicas=1, resources=_SMALL),
        trace_sampling_ratio=1.0,
        anonymous_mode=True,
        canary_weight=0,
        nats_storage="8Gi",
        postgres_storage="2Gi",
        service_overrides={"dispatcher": {"log_level": "DEBUG"}},
    ),
    "staging": Environment(
        name="staging",
        domain="weather.staging.example.com",
        image_registry="registry.example.com",
        cluster=_cluster(
            "staging",
            NodePool(instance_types=("m6i.large",), min_size=3, desired_size=3, max_size=6),
            "weather-mesh-tfstate-staging",
        ),
        dispatcher=Workload(replicas=2, max_replicas=4, resources=_MEDIUM),
        classifier=Workload(replicas=2, max_replicas=4, resources=_CLASSIFIER_SMALL),
        reporting=Workload(replicas=2, max_replicas=3, resources=_MEDIUM),
        ui=Workload(replicas=2, max_replicas=2, resources=_SMALL),
        trace_sampling_ratio=0.5,
        anonymous_mode=True,
        canary_weight=10,
        canary_model_path="/opt/weather-mesh/models/canary.keras",
        nats_storage="10Gi",
        postgres_storage="10Gi",
        postgres_backups=PostgresBackups(
            destination_path="s3://weather-mesh-backups-staging/weather-db",
            retention_policy="7d",
        ),
    ),
    "prod": Environment(
        name="prod",
        domain="weather.example.com",
        image_registry="registry.example.com",
        cluster=_cluster(
            "prod",
            NodePool(instance_types=("m6i.xlarge",), min_size=3, desired_size=4, max_size=10),
            "weather-mesh-tfstate-prod",
        ),
        dispatcher=Workload(replicas=3, max_replicas=10, resources=_MEDIUM),
        classifier=Workload(replicas=3, max_replicas=12, resources=_CLASSIFIER_LARGE),
        reporting=Workload(replicas=3, max_replicas=6, resources=_MEDIUM),
        ui=Workload(replicas=2, max_replicas=4, resources=_SMALL),
        trace_sampling_ratio=0.05,
        anonymous_mode=False,
        canary_weight=0,
        nats_storage="50Gi",
        postgres_storage="50Gi",
        postgres_backups=PostgresBackups(
            destination_path="s3://weather-mesh-backups-prod/weather-db"
        ),
        service_overrides={"classifier": {"max_batch": 64}},
    ),
}


def load_environment(name: str) -> Environment:
    """The environment called `name`, or a message listing the ones that exist."""
    if name not in ENVIRONMENTS:
        raise SystemExit(f"unknown environment {name!r}: choose one of {', '.join(ENVIRONMENTS)}")
    return ENVIRONMENTS[name]
