from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from devmesh.nats import NatsServer, render_nats_config
from devmesh.postgres import PostgresServer
from devmesh.runner import mesh_environment
from devmesh.settings import MeshSettings
from weather.v1 import defaults_pb2


def test_by_default_everything_starts_on_distinct_ports_and_the_ui_is_the_gateway_origin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NATS_PORT", "POSTGRES_PORT", "ENVOY_PORT", "UI_ORIGINS", "DEVMESH_SERVICES"):
        monkeypatch.delenv(name, raising=False)
    settings = MeshSettings()
    ports = [port for port, _what, _variable in settings.ports()]
    assert len(set(ports)) == len(ports), "two listeners of the local mesh would collide"
    assert all(origin.endswith(f":{settings.envoy_port}") for origin in settings.ui_origins)
    assert [s.name for s in settings.services] == ["dispatcher", "classifier", "reporting"]


def test_comma_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UI_ORIGINS", "http://a:1, http://b:2")
    monkeypatch.setenv("DEVMESH_SERVICES", "")
    settings = MeshSettings()
    assert settings.ui_origins == ("http://a:1", "http://b:2")
    assert settings.services == []


def test_an_unknown_service_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVMESH_SERVICES", "dispatcher,frontend")
    with pytest.raises(ValidationError, match="frontend"):
        MeshSettings()


def test_every_port_check_names_the_variable_that_moves_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEVMESH_SERVICES", "reporting")
    monkeypatch.setenv("NATS_PORT", "4333")
    monkeypatch.setenv("REPORTING_METRICS_PORT", "9999")
    ports = MeshSettings().ports()
    assert (9999, "reporting metrics", "REPORTING_METRICS_PORT") in ports
    assert (4333, "NATS", "NATS_PORT") in ports
    assert not any(variable.startswith("DISPATCHER_") for *_, variable in ports)


def _nats(settings: MeshSettings, store_dir: Path) -> NatsServer:
    return NatsServer(
        port=settings.nats_port,
        monitor_port=settings.nats_monitor_port,
        store_dir=store_dir,
        binary=Path("nats-server"),
    )


def test_services_get_nats_urls_users_database_and_their_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NATS_PORT", "4333")
    monkeypatch.setenv("DEVMESH_SERVICES", "dispatcher,classifier,reporting")
    nats = _nats(MeshSettings(), tmp_path / "nats")
    postgres = PostgresServer(port=5433, data_dir=tmp_path / "postgres", bin_dir=tmp_path)
    environment = mesh_environment(MeshSettings(), postgres, nats)
    for prefix in ("DISPATCHER", "CLASSIFIER", "REPORTING"):
        assert environment[f"{prefix}_NATS_URL"] == "nats://127.0.0.1:4333"
        assert environment[f"{prefix}_NATS_USER"] == prefix.lower()
        assert environment[f"{prefix}_NATS_PASSWORD_FILE"] == str(
            tmp_path / "nats" / "credentials" / prefix.lower()
        )
    password = (tmp_path / "postgres-credentials" / "weather_app").read_text()
    assert environment["REPORTING_DATABASE_URL"] == (
        f"postgresql://weather_app:{password}@127.0.0.1:5433/weather"
    )
    assert environment["REPORTING_MIGRATION_DATABASE_URL"].startswith("postgresql://weather_owner:")
    monkeypatch.setenv("CLASSIFIER_GRPC_PORT", "6052")
    moved = mesh_environment(MeshSettings(), postgres, nats)
    assert moved["CLASSIFIER_GRPC_PORT"] == "6052"
    assert environment["CLASSIFIER_GRPC_PORT"] == str(defaults_pb2.DEFAULT_PORT_CLASSIFIER_GRPC)


def test_nats_config_fsyncs_every_write_into_the_store_dir() -> None:
    config = render_nats_config(
        host="127.0.0.1",
        port=4222,
        monitor_port=8222,
        store_dir=Path("/data/nats"),
        server_name="x",
    )
    assert "sync_interval: always" in config
    assert 'store_dir: "/data/nats"' in config
    assert 'listen: "127.0.0.1:4222"' in config


def test_nats_refuses_anonymous_clients_and_keeps_passwords_out_of_urls(tmp_path: Path) -> None:
    nats = NatsServer(port=4222, monitor_port=8222, store_dir=tmp_path, binary=Path("x"))
    nats.prepare()
    config = nats.config_path.read_text()
    assert "authorization {" in config
    assert "no_auth_user" not in config
    password = nats.password_file("classifier").read_text()
    assert len(password) >= 24
    assert f'"password": "{password}"' in config
    assert nats.password_file("classifier").stat().st_mode & 0o077 == 0
    assert nats.config_path.stat().st_mode & 0o077 == 0
    assert "@" not in nats.client_environment("classifier", "CLASSIFIER_")["CLASSIFIER_NATS_URL"]
    nats.prepare()
    assert nats.password_file("classifier").read_text() == password
