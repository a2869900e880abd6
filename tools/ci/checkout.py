"""Where a local pipeline run happens, and the BITBUCKET_* variables Bitbucket would give it.

Bitbucket runs every pipeline on a fresh clone of the pushed commit; so does the local runner
by default, so that nothing untracked in a developer's checkout (a built venv, a stale
`node_modules`, an uncommitted fix) can make a run pass that Bitbucket would fail.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO_SLUG = "weather-mesh"
LOCAL_WORKSPACE = "local"


@dataclass(frozen=True)
class Checkout:
    path: Path
    commit: str
    branch: str


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=300
    ).stdout.strip()


def current_checkout(repo: Path) -> Checkout:
    """`repo` as it is: its HEAD commit and branch (`HEAD` when detached)."""
    return Checkout(
        path=repo.resolve(),
        commit=_git(repo, "rev-parse", "HEAD"),
        branch=_git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
    )


def uncommitted_paths(repo: Path) -> list[str]:
    """Tracked or untracked changes a fresh clone will not see (ignored files excluded)."""
    status = _git(repo, "status", "--porcelain")
    return [line[3:] for line in status.splitlines() if line.strip()]


def fresh_clone(source: Path, workdir: Path, shared: Path | None) -> Checkout:
    """Clone `source`'s committed HEAD into `workdir/<repo name>`, its branch checked out.

    The project's tests read the shared data beside the clone (`../shared`), as they do in CI;
    `shared`, when given, is linked there.
    """
    origin = current_checkout(source)
    target = workdir / REPO_SLUG
    subprocess.run(
        ["git", "clone", "--quiet", "--no-checkout", str(origin.path), str(target)],
        check=True,
        timeout=600,
    )
    branch = origin.branch if origin.branch != "HEAD" else "local-run"
    _git(target, "checkout", "--quiet", "-B", branch, origin.commit)
    if shared is not None:
        (workdir / "shared").symlink_to(shared.resolve(), target_is_directory=True)
    return Checkout(path=target, commit=origin.commit, branch=branch)


def pipeline_environment(
    checkout: Checkout, pipeline_key: str, pr_destination: str
) -> dict[str, str]:
    """The variables Bitbucket sets for every step of a pipeline run on `checkout`.

    A branch pipeline (`branches:main`) runs as if the commit had been pushed to that branch;
    a pull-request pipeline as a pull request from the checkout's branch into `pr_destination`.
    """
    kind, _, selector = pipeline_key.partition(":")
    branch = selector if kind == "branches" and "*" not in selector else checkout.branch
    environment = {
        "CI": "true",
        "BITBUCKET_BUILD_NUMBER": str(int(time.time())),
        "BITBUCKET_CLONE_DIR": str(checkout.path),
        "BITBUCKET_COMMIT": checkout.commit,
        "BITBUCKET_BRANCH": branch,
        "BITBUCKET_REPO_SLUG": REPO_SLUG,
        "BITBUCKET_WORKSPACE": LOCAL_WORKSPACE,
        "BITBUCKET_REPO_FULL_NAME": f"{LOCAL_WORKSPACE}/{REPO_SLUG}",
        "BITBUCKET_PIPELINE_UUID": f"{{{uuid.uuid4()}}}",
    }
    if kind == "pull-requests":
        environment["BITBUCKET_PR_ID"] = "0"
        environment["BITBUCKET_PR_DESTINATION_BRANCH"] = pr_destination
    return environment
