"""A service's environment in the cluster, derived from the settings class the service reads.

The field names, defaults and the environment prefix come from
`services.<name>.settings.<Name>Settings`; nothing here spells a setting's variable name.
The cluster's values (listen on all interfaces, where NATS is, the environment's overrides)
are validated by constructing that class, so a typo'd field or an out-of-range value fails
at synth time with pydantic's message, not in a crash-looping pod.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource


@dataclass(frozen=True)
class ServiceEnvironment:
    """What a service's pod gets: plain settings (ConfigMap) and secret ones (Secret)."""

    settings: BaseSettings
    config: dict[str, str]
    secret_variables: dict[str, str]  # environment variable -> settings field


def settings_class(service: str) -> type[BaseSettings]:
    """`services.<service>.settings.<Service>Settings`, imported (the one definition)."""
    module = importlib.import_module(f"services.{service}.settings")
    found: type[BaseSettings] = getattr(module, f"{service.capitalize()}Settings")
    return found


def env_prefix(cls: type[BaseSettings]) -> str:
    prefix: str = cls.model_config.get("env_prefix", "")
    return prefix


def env_name(cls: type[BaseSettings], field: str) -> str:
    """The variable a field is read from (pydantic-settings: prefix + name, case-insensitive)."""
    if field not in cls.model_fields:
        raise KeyError(f"{cls.__name__} has no setting {field!r}")
    return f"{env_prefix(cls)}{field}".upper()


def _only_given_values(cls: type[BaseSettings]) -> type[BaseSettings]:
    """The class, reading nothing but its arguments: the synth machine's environment and any
    .env file must not leak into what the cluster gets."""

    def sources(
        _cls: type[BaseSettings],
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)

    return type(cls.__name__, (cls,), {"settings_customise_sources": classmethod(sources)})


def _as_env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def service_environment(service: str, values: Mapping[str, Any]) -> ServiceEnvironment:
    """Validate `values` (field name -> value) against the service's settings class and
    render every non-secret setting as an environment variable.

    Every setting is written, defaults included, so `kubectl get configmap` shows the whole
    configuration a pod runs with. Secret fields (`SecretStr`) never go to the ConfigMap: they
    are listed so the caller fills them from a Kubernetes Secret.
    """
    cls = settings_class(service)
    unknown = sorted(set(values) - set(cls.model_fields))
    if unknown:
        raise ValueError(f"{cls.__name__} has no setting(s) {unknown}")
    settings = _only_given_values(cls)(**values)
    dumped = settings.model_dump(mode="json")
    config: dict[str, str] = {}
    secret_variables: dict[str, str] = {}
    for field, info in cls.model_fields.items():
        if _is_secret(info.annotation):
            secret_variables[env_name(cls, field)] = field
        elif dumped[field] is not None:
            config[env_name(cls, field)] = _as_env_value(dumped[field])
    return ServiceEnvironment(settings=settings, config=config, secret_variables=secret_variables)


def _is_secret(annotation: Any) -> bool:
    """`SecretStr`, or an optional one (`SecretStr | None`: unset locally, set in a cluster)."""
    return annotation is SecretStr or SecretStr in get_args(annotation)
