import pytest
from pydantic import ValidationError

from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings
from services.reporting.settings import ReportingSettings
from weather.v1 import defaults_pb2


def test_each_service_listens_by_default_on_its_own_ports_from_the_contract() -> None:
    services = [DispatcherSettings(), ClassifierSettings(), ReportingSettings()]
    ports = [port for settings in services for port in (settings.grpc_port, settings.metrics_port)]
    assert len(set(ports)) == len(ports), "two listeners of the mesh would collide"
    assert set(ports) == {value for name, value in defaults_pb2.DefaultPort.items() if value != 0}


def test_each_service_reads_only_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_GRPC_PORT", "6000")
    monkeypatch.setenv("CLASSIFIER_NATS_URL", "nats://nats.example:4222")
    assert DispatcherSettings().grpc_port == 6000
    assert ClassifierSettings().grpc_port == defaults_pb2.DEFAULT_PORT_CLASSIFIER_GRPC
    assert ClassifierSettings().nats_servers == ["nats://nats.example:4222"]
    assert DispatcherSettings().nats_servers == ["nats://127.0.0.1:4222"]


def test_invalid_value_is_rejected_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTING_GRPC_PORT", "70000")
    with pytest.raises(ValidationError, match="grpc_port"):
        ReportingSettings()


def test_nats_url_accepts_a_cluster_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_NATS_URL", "nats://a:4222, nats://b:4222,")
    assert DispatcherSettings().nats_servers == ["nats://a:4222", "nats://b:4222"]


def test_database_password_stays_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPORTING_DATABASE_URL", "postgresql://u:hunter2@db/weather")
    settings = ReportingSettings()
    assert "hunter2" not in repr(settings)
    assert settings.database_url.get_secret_value().endswith("hunter2@db/weather")
