"""Credentials in the cluster: each service is its own NATS user with the kit's rights, and
reporting serves as a PostgreSQL role that is not the owner.

The NATS side is read from the chart as rendered with the values we ship (the nats.conf the
server would load), not from our values dict; the rights are judged with NATS's wildcard rules.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from devmesh.postgres import RUNTIME_ROLE as LOCAL_RUNTIME_ROLE
from meshkit.broker_layout import (
    IMAGES_BUCKET,
    MODEL_RELEASES_BUCKET,
    MODEL_REPOSITORY_BUCKET,
    job_subject,
)
from meshkit.broker_permissions import (
    ADMIN_USER,
    MODEL_PUBLISHER_USER,
    server_permissions,
    service_permissions,
    tool_permissions,
)
from services.reporting.migrations import RUNTIME_ROLE
from services.reporting.migrator import packaged_migrations
from tests.unit.cdktf.chart_rendering import RenderCharts
from tests.unit.nats_subjects import subject_matches
from weather_deploy import charts
from weather_deploy.config import EnvironmentName
from weather_deploy.contract import DATABASE_OWNER, DATABASE_RUNTIME_ROLE, NATS_RELEASE
from weather_deploy.service_config import env_name, settings_class
from weather_deploy.stacks import DATABASE_OWNER_SECRET, DATABASE_RUNTIME_SECRET, SERVICES
from weather_deploy.synthesis import Synthesized

JOB_ID = "0" * 32
Users = dict[str, dict[str, Any]]


def _block(config: str, key: str) -> str:
    """The `"key": {...}` object of a rendered nats.conf, braces balanced."""
    start = config.index(f'"{key}": {{') + len(f'"{key}": ')
    depth = 0
    for index in range(start, len(config)):
        depth += {"{": 1, "}": -1}.get(config[index], 0)
        if depth == 0:
            return config[start : index + 1]
    raise AssertionError(f"unbalanced {key} block")


def rendered_users(
    rendered_charts: RenderCharts, env: EnvironmentName = "prod"
) -> tuple[Users, str]:
    """user -> its entry in the rendered nats.conf (a `$VARIABLE` password kept as text)."""
    nats = rendered_charts(env)[NATS_RELEASE]
    (config_map,) = [o for o in nats if o["kind"] == "ConfigMap"]
    config: str = config_map["data"]["nats.conf"]
    authorization = re.sub(r"(?<![\"\w])\$(\w+)", r'"$\1"', _block(config, "authorization"))
    users = json.loads(authorization)["users"]
    return {entry["user"]: entry for entry in users}, config


def _may_publish(users: Users, user: str, subject: str) -> bool:
    return any(subject_matches(p, subject) for p in users[user]["permissions"]["publish"]["allow"])


def test_the_cluster_nats_admits_each_service_with_exactly_the_kits_rights(
    rendered_charts: RenderCharts,
) -> None:
    users, _ = rendered_users(rendered_charts)
    table = {**service_permissions(), **tool_permissions()}
    assert set(users) == {*SERVICES, MODEL_PUBLISHER_USER} == set(table)
    assert ADMIN_USER not in users
    for user, permissions in table.items():
        assert users[user]["permissions"] == server_permissions(permissions)


def test_in_the_cluster_the_classifier_cannot_queue_jobs_or_write_images(
    rendered_charts: RenderCharts,
) -> None:
    users, _ = rendered_users(rendered_charts)
    assert not _may_publish(users, "classifier", job_subject(JOB_ID, "queued"))
    assert not _may_publish(users, "classifier", f"$O.{IMAGES_BUCKET}.C.chunk")
    assert _may_publish(users, "classifier", job_subject(JOB_ID, "succeeded"))
    assert _may_publish(users, "dispatcher", job_subject(JOB_ID, "queued"))
    assert not _may_publish(users, "reporting", job_subject(JOB_ID, "failed"))


def test_only_the_model_publisher_moves_the_current_model_and_it_touches_no_job(
    rendered_charts: RenderCharts,
) -> None:
    users, _ = rendered_users(rendered_charts)
    pointer = f"$KV.{MODEL_RELEASES_BUCKET}.current"
    assert _may_publish(users, MODEL_PUBLISHER_USER, pointer)
    assert _may_publish(users, MODEL_PUBLISHER_USER, f"$O.{MODEL_REPOSITORY_BUCKET}.C.chunk")
    assert not any(_may_publish(users, service, pointer) for service in SERVICES)
    for subject in (job_subject(JOB_ID, "queued"), f"$O.{IMAGES_BUCKET}.C.chunk"):
        assert not _may_publish(users, MODEL_PUBLISHER_USER, subject)


def test_no_password_is_in_the_nats_config_each_comes_from_the_users_secret(
    rendered_charts: RenderCharts, synthesized: Synthesized
) -> None:
    users, config = rendered_users(rendered_charts, synthesized.env)
    nats = rendered_charts(synthesized.env)[NATS_RELEASE]
    (statefulset,) = [o for o in nats if o["kind"] == "StatefulSet"]
    (server,) = [
        c for c in statefulset["spec"]["template"]["spec"]["containers"] if c["name"] == "nats"
    ]
    from_secret = {
        variable["name"]: variable["valueFrom"]["secretKeyRef"]
        for variable in server.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }
    secret = synthesized.find("platform", "Secret", charts.NATS_USERS_SECRET)
    for user, entry in users.items():
        variable = entry["password"].removeprefix("$")
        assert entry["password"] == f"${variable}"  # a reference nats-server resolves
        assert from_secret[variable] == {"name": charts.NATS_USERS_SECRET, "key": user}
        assert "random_password" in secret["stringData"][user]
    assert "no_auth_user" not in config  # no anonymous client


def test_the_nats_release_waits_for_the_secret_its_server_reads(synthesized: Synthesized) -> None:
    platform = synthesized.stacks["platform"]["resource"]
    release = platform["helm_release"][NATS_RELEASE]
    secret_id = f"kubernetes_manifest.secret-nats-{charts.NATS_USERS_SECRET}"
    assert secret_id in release["depends_on"]


def _deployments(synthesized: Synthesized) -> list[dict[str, Any]]:
    return [m for m in synthesized.manifests("app") if m["kind"] == "Deployment"]


def _config(synthesized: Synthesized, deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (config_ref,) = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    config: dict[str, str] = synthesized.find("app", "ConfigMap", config_ref)["data"]
    return config


def test_every_deployment_on_nats_connects_as_its_service_with_a_mounted_password(
    synthesized: Synthesized,
) -> None:
    on_nats = 0
    for deployment in _deployments(synthesized):
        service = deployment["metadata"]["labels"]["app.kubernetes.io/name"]
        if service not in SERVICES:  # the UI
            continue
        config = _config(synthesized, deployment)
        cls = settings_class(service)
        if "nats_url" not in cls.model_fields:
            continue
        on_nats += 1
        assert config[env_name(cls, "nats_user")] == service
        password_file = config[env_name(cls, "nats_password_file")]
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        (mount,) = [
            m for m in container["volumeMounts"] if password_file.startswith(m["mountPath"])
        ]
        assert mount["readOnly"] is True
        (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
        secret = synthesized.find("app", "Secret", volume["secret"]["secretName"])
        (item,) = volume["secret"]["items"]
        assert password_file == f"{mount['mountPath']}/{item['path']}"
        assert "random_password" in secret["stringData"][item["key"]]
        assert volume["secret"]["defaultMode"] & 0o007 == 0  # not world-readable
    assert on_nats >= len(SERVICES)


def test_a_service_reads_the_same_password_the_nats_server_checks(
    synthesized: Synthesized,
) -> None:
    server = synthesized.find("platform", "Secret", charts.NATS_USERS_SECRET)["stringData"]
    for service in SERVICES:
        own = synthesized.find("app", "Secret", f"{service}-nats")["stringData"]["password"]
        # the app stack reads the platform stack's generated password through its state
        generated = re.search(r"random_password\.([\w-]+)\.result", server[service])
        assert generated, server[service]
        assert f"random_password{generated.group(1)}result" in own


def _reporting_urls(synthesized: Synthesized) -> tuple[str, str]:
    cls = settings_class("reporting")
    secret = synthesized.find("app", "Secret", "reporting")["stringData"]
    return secret[env_name(cls, "database_url")], secret[env_name(cls, "migration_database_url")]


def test_reporting_serves_as_the_runtime_role_and_migrates_as_the_owner(
    synthesized: Synthesized,
) -> None:
    runtime_url, migration_url = _reporting_urls(synthesized)
    runtime_role, owner = urlsplit(runtime_url).username, urlsplit(migration_url).username
    assert runtime_role == DATABASE_RUNTIME_ROLE
    assert owner == DATABASE_OWNER
    assert runtime_role != owner
    database = synthesized.find("platform-crs", "Cluster", "weather-db")
    assert database["spec"]["bootstrap"]["initdb"]["owner"] == owner


def test_the_database_declares_the_runtime_role_with_a_generated_password(
    synthesized: Synthesized,
) -> None:
    database = synthesized.find("platform-crs", "Cluster", "weather-db")
    (role,) = database["spec"]["managed"]["roles"]
    assert role["name"] == DATABASE_RUNTIME_ROLE
    assert role["login"] is True
    assert not any(role[right] for right in ("superuser", "createdb", "createrole"))
    secret = synthesized.find("platform-crs", "Secret", role["passwordSecret"]["name"])
    assert secret["metadata"]["name"] == DATABASE_RUNTIME_SECRET != DATABASE_OWNER_SECRET
    assert secret["type"] == "kubernetes.io/basic-auth"  # what CloudNativePG reads
    assert secret["stringData"]["username"] == role["name"]
    assert "random_password" in secret["stringData"]["password"]
    runtime_url, _ = _reporting_urls(synthesized)
    assert "platform-crs" in runtime_url  # the same password, read through that stack's state


def test_the_runtime_roles_rights_come_from_the_migrations() -> None:
    """The cluster's operator grants nothing: the owner's migrations must."""
    assert DATABASE_RUNTIME_ROLE == RUNTIME_ROLE == LOCAL_RUNTIME_ROLE
    granted = " ".join(m.sql for m in packaged_migrations())
    for right in ("ON ALL TABLES IN SCHEMA public TO", "ON TABLES TO", "USAGE ON SCHEMA public TO"):
        assert f"{right} {RUNTIME_ROLE};" in granted
