"""One synthesis per environment (and target), shared by every cdktf test in the session."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

# jsii's Node.js runtime warns on every start that Node 20 is past its support date.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from tests.unit.cdktf.chart_rendering import RenderCharts, Rendered, render_releases
from weather_deploy.config import ENVIRONMENTS, EnvironmentName
from weather_deploy.stacks import Target
from weather_deploy.synthesis import Synthesized, synthesize

IMAGE_TAG = "test-tag"
KIND_API_CIDR = "172.18.0.0/16"  # kind's node network, where its API server listens
Synth = Callable[..., Synthesized]


@pytest.fixture(scope="session")
def synth() -> Synth:
    """`synth(env, target=Target())`, each combination synthesized once per test session."""
    done: dict[tuple[EnvironmentName, Target], Synthesized] = {}

    def get(env: EnvironmentName, target: Target | None = None) -> Synthesized:
        key = (env, target or Target())
        if key not in done:
            done[key] = synthesize(env, key[1], IMAGE_TAG)
        return done[key]

    return get


@pytest.fixture(scope="session", params=sorted(ENVIRONMENTS))
def synthesized(request: pytest.FixtureRequest, synth: Synth) -> Synthesized:
    """Every environment in turn."""
    return synth(request.param)


@pytest.fixture(scope="session")
def prod(synth: Synth) -> Synthesized:
    return synth("prod")


@pytest.fixture(scope="session")
def on_kube_context(synth: Synth) -> Synthesized:
    return synth("dev", Target(kube_context="kind-weather", kube_api_cidr=KIND_API_CIDR))


@pytest.fixture(scope="session")
def rendered_charts(synth: Synth, tmp_path_factory: pytest.TempPathFactory) -> RenderCharts:
    """`rendered_charts(env)`: the platform stack's charts rendered, once per environment."""
    done: dict[str, Rendered] = {}

    def get(env: EnvironmentName) -> Rendered:
        if env not in done:
            done[env] = render_releases(synth(env), tmp_path_factory.mktemp(f"helm-{env}"))
        return done[env]

    return get
