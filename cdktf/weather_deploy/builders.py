"""The only module that calls cdktf constructs: every stack builds through these functions.

Why one place: HashiCorp archived cdktf on 2025-12-10 (last release 0.21.0). The maintained
fork, CDK Terrain (`cdktn` on PyPI), is close but not a pure rename, so a move must touch one
module, not every stack (README: "Moving to CDK Terrain").

Why core constructs and no generated provider bindings: the prebuilt kubernetes binding is an
18 MB wheel whose jsii bundle takes seconds to load in every process, and its typed classes
re-spell the Kubernetes API in Terraform's block syntax (which would then have to be translated
back to be validated). We emit `kubernetes_manifest` resources whose `manifest` IS the
Kubernetes object, so the object we validate is byte for byte the object Terraform applies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdktf import (
    App,
    Fn,
    ITerraformDependable,
    LocalBackend,
    S3Backend,
    TerraformHclModule,
    TerraformOutput,
    TerraformProvider,
    TerraformProviderGeneratorMetadata,
    TerraformResource,
    TerraformStack,
    TerraformVariable,
)
from constructs import Construct

Manifest = Mapping[str, Any]


@dataclass(frozen=True)
class ProviderPin:
    """A Terraform provider: registry source and version constraint."""

    name: str
    source: str
    version: str


KUBERNETES = ProviderPin("kubernetes", "hashicorp/kubernetes", "~> 2.38")
HELM = ProviderPin("helm", "hashicorp/helm", "~> 3.0")
AWS = ProviderPin("aws", "hashicorp/aws", "~> 6.0")
RANDOM = ProviderPin("random", "hashicorp/random", "~> 3.7")


@dataclass(frozen=True)
class ChartPin:
    """A Helm chart as a release installs it: repository URL, chart name, exact version."""

    repository: str
    chart: str
    version: str


def new_app(outdir: str | None = None) -> App:
    return App(outdir=outdir) if outdir else App()


def new_stack(app: Construct, stack_id: str) -> TerraformStack:
    return TerraformStack(app, stack_id)


def depends(stack: TerraformStack, on: TerraformStack) -> None:
    """Apply `stack` after `on` (recorded in cdktf.out/manifest.json)."""
    stack.add_dependency(on)


def s3_state(stack: TerraformStack, *, bucket: str, key: str, region: str) -> None:
    """Remote state in S3 with S3-native locking (`use_lockfile`, Terraform >= 1.10)."""
    S3Backend(stack, bucket=bucket, key=key, region=region, encrypt=True)
    stack.add_override("terraform.backend.s3.use_lockfile", True)


def local_state(stack: TerraformStack, *, path: str) -> None:
    """State on the user's disk (kubeconfig-context mode: no cloud account needed)."""
    LocalBackend(stack, path=path)


def provider(
    stack: TerraformStack, pin: ProviderPin, settings: Manifest, alias: str | None = None
) -> TerraformProvider:
    """A provider block with `settings` as its body (blocks as Terraform JSON expects them)."""
    configured = TerraformProvider(
        stack,
        f"{pin.name}-{alias}" if alias else pin.name,
        terraform_resource_type=pin.name,
        terraform_generator_metadata=TerraformProviderGeneratorMetadata(
            provider_name=pin.name, provider_version_constraint=pin.version
        ),
        terraform_provider_source=pin.source,
    )
    for key, value in settings.items():
        configured.add_override(key, value)
    if alias:
        configured.add_override("alias", alias)
    return configured


def module(
    stack: TerraformStack, module_id: str, *, source: str, version: str, inputs: Manifest
) -> TerraformHclModule:
    """A registry module (e.g. terraform-aws-modules), pinned, with its input variables."""
    return TerraformHclModule(stack, module_id, source=source, version=version, variables=inputs)


def module_output(hcl_module: TerraformHclModule, name: str) -> str:
    return hcl_module.get_string(name)


def module_list_output(hcl_module: TerraformHclModule, name: str) -> list[str]:
    return hcl_module.get_list(name)


def variable(
    stack: TerraformStack,
    name: str,
    *,
    description: str,
    sensitive: bool = False,
    default: str | None = None,
) -> str:
    """A string input variable; returns the token that reads it (`${var.name}`)."""
    declared = TerraformVariable(
        stack, name, type="string", description=description, sensitive=sensitive, default=default
    )
    return declared.string_value


def output(stack: TerraformStack, name: str, value: Any, *, sensitive: bool = False) -> None:
    TerraformOutput(stack, name, value=value, sensitive=sensitive, static_id=True)


def url_encode(value: str) -> str:
    return Fn.urlencode(value)


def base64_decode(value: str) -> str:
    return Fn.base64decode(value)


# Letters and digits only: a password reaches nats-server through an environment variable
# its configuration parser reads as a bare token, and a PostgreSQL URL, unescaped.
PASSWORD_LENGTH = 40


def random_password(stack: TerraformStack, name: str, *, random: TerraformProvider) -> str:
    """A password Terraform generates once and keeps in the stack's state (never in the
    repository); returns the token that reads it."""
    resource = TerraformResource(
        stack,
        name,
        terraform_resource_type="random_password",
        terraform_generator_metadata=TerraformProviderGeneratorMetadata(provider_name=RANDOM.name),
        provider=random,
    )
    settings = {"length": PASSWORD_LENGTH, "special": False, "min_lower": 1, "min_upper": 1}
    for key, value in settings.items():
        resource.add_override(key, value)
    return resource.get_string_attribute("result")


def _id(manifest: Manifest) -> str:
    metadata = manifest["metadata"]
    namespace = metadata.get("namespace", "cluster")
    return f"{manifest['kind']}-{namespace}-{metadata['name']}".lower()


def kubernetes_object(
    stack: TerraformStack,
    manifest: Manifest,
    *,
    kubernetes: TerraformProvider,
    depends_on: Sequence[ITerraformDependable] = (),
    computed_fields: Sequence[str] = (),
    resource_id: str | None = None,
) -> TerraformResource:
    """One Kubernetes object as a `kubernetes_manifest` (its id: kind-namespace-name, or
    `resource_id` when the name holds a Terraform expression).

    `computed_fields` are fields the cluster may change (say `spec.replicas` under an
    autoscaler) that Terraform must not fight over."""
    resource = TerraformResource(
        stack,
        resource_id or _id(manifest),
        terraform_resource_type="kubernetes_manifest",
        terraform_generator_metadata=TerraformProviderGeneratorMetadata(
            provider_name=KUBERNETES.name
        ),
        provider=kubernetes,
        depends_on=list(depends_on) or None,
    )
    resource.add_override("manifest", dict(manifest))
    if computed_fields:
        resource.add_override("computed_fields", list(computed_fields))
    return resource


def wait_for_condition(resource: TerraformResource, condition: str, minutes: int = 10) -> None:
    """Terraform waits until the object reports `condition` (e.g. a Job's Complete)."""
    resource.add_override("wait", {"condition": [{"type": condition, "status": "True"}]})
    resource.add_override("timeouts", {"create": f"{minutes}m", "update": f"{minutes}m"})


def helm_release(
    stack: TerraformStack,
    release: str,
    *,
    namespace: str,
    chart: ChartPin,
    values: Manifest,
    helm: TerraformProvider,
    depends_on: Sequence[ITerraformDependable] = (),
) -> TerraformResource:
    """A pinned Helm release; `values` is the one dict the tests also render the chart with."""
    resource = TerraformResource(
        stack,
        release,
        terraform_resource_type="helm_release",
        terraform_generator_metadata=TerraformProviderGeneratorMetadata(provider_name=HELM.name),
        provider=helm,
        depends_on=list(depends_on) or None,
    )
    body = {
        "name": release,
        "namespace": namespace,
        "repository": chart.repository,
        "chart": chart.chart,
        "version": chart.version,
        "values": [json.dumps(values, sort_keys=True)],
        "atomic": True,
        "wait": True,
        "timeout": 900,
    }
    for key, value in body.items():
        resource.add_override(key, value)
    return resource
