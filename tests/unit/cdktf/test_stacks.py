"""Every stack synthesizes for every environment, pins what it installs, and is wired in order."""

from __future__ import annotations

import itertools
import re

import pytest

from weather_deploy.builders import HELM, KUBERNETES
from weather_deploy.charts import releases
from weather_deploy.config import ENVIRONMENTS
from weather_deploy.contract import DATABASE_OWNER, DATABASE_RUNTIME_ROLE
from weather_deploy.k8s_schemas import shared_k8s_dir
from weather_deploy.synthesis import Synthesized

STACKS_IN_ORDER = ["cluster", "platform", "platform-crs", "app"]


def chart_table() -> dict[str, str]:
    """chart name -> version, from ../shared/k8s/README.md's table of upstream copies."""
    table = (shared_k8s_dir() / "README.md").read_text(encoding="utf-8")
    versions: dict[str, str] = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.split("|")]
        if len(cells) > 2 and cells[1].startswith("`charts/"):
            found = re.match(r"([\w-]+) \(?(\d+\.\d+\.\d+)\)?", cells[2])
            assert found, f"unreadable chart cell {cells[2]!r}"
            versions.setdefault(found.group(1), found.group(2))
    return versions


def test_every_stack_synthesizes_for_every_environment(synthesized: Synthesized) -> None:
    assert list(synthesized.stacks) == STACKS_IN_ORDER
    assert all(
        stack.get("resource") or stack.get("module") for stack in synthesized.stacks.values()
    )


def test_stacks_apply_in_order_each_after_the_previous(synthesized: Synthesized) -> None:
    stacks = synthesized.manifest["stacks"]
    for earlier, later in itertools.pairwise(STACKS_IN_ORDER):
        assert earlier in stacks[later]["dependencies"], f"{later} does not wait for {earlier}"


def test_platform_and_app_reach_the_cluster_through_its_remote_state(
    synthesized: Synthesized,
) -> None:
    cluster_outputs = synthesized.stacks["cluster"]["output"]
    for stack in ("platform", "platform-crs", "app"):
        synthesized_stack = synthesized.stacks[stack]
        remote = synthesized_stack["data"]["terraform_remote_state"]
        (reference,) = [
            r for r in remote.values() if r["config"]["key"].endswith("/cluster.tfstate")
        ]
        assert reference["backend"] == "s3"
        assert reference["config"]["key"] == f"weather-mesh/{synthesized.env}/cluster.tfstate"
        (kubernetes,) = synthesized_stack["provider"]["kubernetes"]
        read = re.findall(
            r"outputs\.([\w-]+)", kubernetes["host"] + kubernetes["cluster_ca_certificate"]
        )
        assert read
        assert all(output in cluster_outputs for output in read)


def test_state_is_remote_with_locking_per_environment_and_stack(synthesized: Synthesized) -> None:
    cluster = ENVIRONMENTS[synthesized.env].cluster
    for name, stack in synthesized.stacks.items():
        backend = stack["terraform"]["backend"]["s3"]
        assert backend["use_lockfile"] is True
        assert backend["encrypt"] is True
        assert backend["bucket"] == cluster.state_bucket
        assert backend["key"] == f"weather-mesh/{synthesized.env}/{name}.tfstate"


def test_cluster_stack_builds_network_node_pools_and_iam_from_pinned_modules(
    synthesized: Synthesized,
) -> None:
    modules = synthesized.stacks["cluster"]["module"]
    env = ENVIRONMENTS[synthesized.env]
    assert modules["vpc"]["source"] == "terraform-aws-modules/vpc/aws"
    assert modules["eks"]["source"] == "terraform-aws-modules/eks/aws"
    assert all(module["version"].startswith("~> ") for module in modules.values())
    assert modules["eks"]["vpc_id"] == "${module.vpc.vpc_id}"
    assert modules["eks"]["kubernetes_version"] == env.cluster.kubernetes_version
    groups = modules["eks"]["eks_managed_node_groups"]
    assert set(groups) == set(env.cluster.node_pools)
    assert "aws-ebs-csi-driver" in modules["eks"]["addons"]  # the PVCs need it


def test_every_helm_release_pins_repository_and_the_shared_chart_version(
    synthesized: Synthesized,
) -> None:
    table = chart_table()
    installed = synthesized.stacks["platform"]["resource"]["helm_release"]
    assert set(installed) == {release.name for release in releases(ENVIRONMENTS[synthesized.env])}
    for name, release in installed.items():
        assert release["repository"].startswith("https://"), name
        assert release["version"] == table[release["chart"]], name


def test_providers_are_pinned(synthesized: Synthesized) -> None:
    for name, stack in synthesized.stacks.items():
        for provider, pin in stack["terraform"].get("required_providers", {}).items():
            assert pin["version"].startswith("~> "), (name, provider)
    assert synthesized.stacks["platform"]["terraform"]["required_providers"]["helm"] == {
        "source": HELM.source,
        "version": HELM.version,
    }
    assert synthesized.stacks["app"]["terraform"]["required_providers"]["kubernetes"] == {
        "source": KUBERNETES.source,
        "version": KUBERNETES.version,
    }


def test_kube_context_mode_has_no_cluster_stack_and_uses_the_context(
    on_kube_context: Synthesized,
) -> None:
    assert list(on_kube_context.stacks) == STACKS_IN_ORDER[1:]
    for stack in on_kube_context.stacks.values():
        (kubernetes,) = stack["provider"]["kubernetes"]
        assert kubernetes["config_context"] == "kind-weather"
        assert "local" in stack["terraform"]["backend"]
        # Remote state only for what an earlier stack generated (passwords), on local disk.
        for reference in stack.get("data", {}).get("terraform_remote_state", {}).values():
            assert reference["backend"] == "local"
    (helm,) = on_kube_context.stacks["platform"]["provider"]["helm"]
    assert helm["kubernetes"]["config_context"] == "kind-weather"


def test_secrets_come_from_sensitive_variables_never_from_the_repo(
    synthesized: Synthesized,
) -> None:
    for stack in ("platform-crs", "app"):
        variables = synthesized.stacks[stack]["variable"]
        assert variables["database_password"]["sensitive"] is True
        assert "default" not in variables["database_password"]
    secrets = [m for m in synthesized.all_manifests() if m["kind"] == "Secret"]
    assert secrets
    generated = set(synthesized.stacks["platform"]["resource"]["random_password"]) | set(
        synthesized.stacks["platform-crs"]["resource"]["random_password"]
    )
    for secret in secrets:
        for value in secret["stringData"].values():
            assert (
                "var." in value
                or "random_password" in value
                or value in {DATABASE_OWNER, DATABASE_RUNTIME_ROLE}
            ), secret["metadata"]["name"]
    # A generated password is read in its own stack, or through that stack's state.
    for stack in ("platform", "platform-crs"):
        for output in synthesized.stacks[stack].get("output", {}).values():
            if "random_password." in output["value"]:
                assert output["sensitive"] is True
    assert generated


@pytest.mark.parametrize("env", sorted(ENVIRONMENTS))
def test_environments_differ_only_in_data(env: str) -> None:
    config = ENVIRONMENTS[env]  # type: ignore[index]
    assert config.name == env
    assert config.classifier.max_replicas >= config.classifier.replicas


def test_platform_stack_alone_has_the_pinned_nats_release() -> None:
    """The platform stack on its own, through cdktf's Testing assertions."""
    from cdktf import Testing

    from tests.unit.cdktf.conftest import KIND_API_CIDR
    from weather_deploy.stacks import Target, kube_context_access, platform_stack

    env = ENVIRONMENTS["dev"]
    target = Target(kube_context="kind-weather", kube_api_cidr=KIND_API_CIDR)
    stack, _ = platform_stack(Testing.app(), env, target, kube_context_access(target))
    synthesized = Testing.synth(stack)
    nats = next(r for r in releases(env) if r.name == "nats")
    assert Testing.to_have_resource_with_properties(
        synthesized,
        "helm_release",
        {"name": "nats", "repository": nats.chart.repository, "version": nats.chart.version},
    )
    assert not Testing.to_have_resource_with_properties(
        synthesized, "helm_release", {"name": "nats", "version": "0.0.1"}
    )
