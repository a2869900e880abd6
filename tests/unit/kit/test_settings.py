import pytest
from pydantic import ValidationError

from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings
from services.reporting.settings import ReportingSettings


def test_defaults_match_the_documented_local_ports() -> None:
    assert DispatcherSettings().grpc_port == 50051
    assert ClassifierSettings().grpc_port == 50052
    assert ReportingSettings().grpc_port == 50053
    assert (
        DispatcherSettings().metrics_port,
        ClassifierSettings().metrics_port,
        ReportingSettings().metrics_port,
    ) == (9101, 9102, 9103)


def test_each_service_reads_only_its_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCHER_GRPC_PORT", "6000")
    monkeypatch.setenv("CLASSIFIER_NATS_URL", "nats://nats.example:4222")
    assert DispatcherSettings().grpc_port == 6000
    assert ClassifierSettings().grpc_port == 50052
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
