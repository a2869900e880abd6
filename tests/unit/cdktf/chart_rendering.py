"""The platform's charts, at the pinned versions, rendered by `helm template` with the values
the platform stack passes (read back from its synthesized helm_release): what the cluster
would run. Shared by the chart tests and the flow-table cross-check."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from weather_deploy.config import EnvironmentName
from weather_deploy.k8s_schemas import KUBERNETES_VERSION, REPO_ROOT, shared_k8s_dir
from weather_deploy.synthesis import Synthesized

# chart name -> folder of its upstream copy in ../shared/k8s/charts
CHART_FOLDERS = {
    "base": "istio/base",
    "istiod": "istio/istiod",
    "gateway": "istio/gateway",
    "nats": "nats",
    "cloudnative-pg": "cloudnative-pg",
    "jaeger": "jaeger",
    "keda": "keda",
}
# The charts' own CustomResourceDefinitions are not checked against a schema: they ARE the
# schemas (their content is what k8s/crds vendors and what our custom resources are checked
# against), and the API server validates a CRD itself when the chart installs it.
SKIPPED_KINDS = {"CustomResourceDefinition"}

# release name -> its rendered objects (each with its release's namespace filled in)
Rendered = dict[str, list[dict[str, Any]]]
# the session fixture `rendered_charts`: an environment's charts, rendered once per session
RenderCharts = Callable[[EnvironmentName], Rendered]


def helm() -> str:
    found = REPO_ROOT / ".venv" / "bin" / "helm"
    if found.is_file():
        return str(found)
    on_path = shutil.which("helm")
    assert on_path, "helm v4 is missing: run `make k8s-tools` (make test-unit does)"
    return on_path


def render(release: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    values = tmp_path / f"{release['name']}.values.json"
    values.write_text(release["values"][0], encoding="utf-8")
    chart = shared_k8s_dir() / "charts" / CHART_FOLDERS[release["chart"]]
    rendered = subprocess.run(
        [
            helm(),
            "template",
            release["name"],
            str(chart),
            "--namespace",
            release["namespace"],
            "--values",
            str(values),
            "--kube-version",
            f"{KUBERNETES_VERSION}.0",
            "--include-crds",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    return [d for d in yaml.load_all(rendered.stdout, Loader=yaml.CSafeLoader) if d]


def render_releases(synthesized: Synthesized, tmp_path: Path) -> Rendered:
    """Every helm_release of the platform stack, rendered (in parallel: independent helm runs)."""
    releases = synthesized.stacks["platform"]["resource"]["helm_release"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        rendered = pool.map(lambda release: render(release, tmp_path), releases.values())
        return dict(zip(releases, rendered, strict=True))
