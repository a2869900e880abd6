"""The environment a cluster gives each service container, named by its settings class.

Variable names come from the settings classes themselves (`<PREFIX><FIELD>`), so a renamed
setting fails here instead of silently starting a container with its default.
"""

from __future__ import annotations

from meshkit.settings import ServiceSettings
from services.classifier.settings import ClassifierSettings
from services.dispatcher.settings import DispatcherSettings
from services.reporting.settings import ReportingSettings
from tools.images.ui_server import ALL_INTERFACES

SETTINGS: dict[str, type[ServiceSettings]] = {
    "dispatcher": DispatcherSettings,
    "classifier": ClassifierSettings,
    "reporting": ReportingSettings,
}
TRACING_OFF = {"OTEL_SDK_DISABLED": "true"}


def variable(service: str, setting: str) -> str:
    settings_class = SETTINGS[service]
    if setting not in settings_class.model_fields:
        raise KeyError(f"{settings_class.__name__} has no setting {setting!r}")
    return f"{settings_class.model_config.get('env_prefix', '')}{setting}".upper()


def service_environment(
    service: str,
    *,
    grpc_port: int,
    metrics_port: int,
    nats_url: str,
    database_url: str | None = None,
    jwks_uri: str | None = None,
) -> dict[str, str]:
    """Listen on all interfaces (as in a pod), on the given ports; tracing off. Services with
    public RPCs fetch token keys from `jwks_uri`, as in the cluster, and run in demo mode."""
    settings = {
        "grpc_host": ALL_INTERFACES,
        "grpc_port": str(grpc_port),
        "metrics_host": ALL_INTERFACES,
        "metrics_port": str(metrics_port),
        "nats_url": nats_url,
    }
    if jwks_uri is not None and "auth_jwks_uri" in SETTINGS[service].model_fields:
        settings["auth_jwks_uri"] = jwks_uri
        settings["auth_anonymous_demo"] = "true"
    if database_url is not None:
        settings["database_url"] = database_url
    return {**{variable(service, name): value for name, value in settings.items()}, **TRACING_OFF}
