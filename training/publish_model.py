"""`make publish-model` / `make promote-model`: put a trained model into the repository on
the broker, and choose which one the classifiers serve.

    python -m training.publish_model publish [MODEL.keras] [--metrics eval.json]
    python -m training.publish_model promote sha256:0123456789ab
    python -m training.publish_model show

Why a tool beside training: a model is an artefact; the classifiers fetch it from the
broker, so a new model needs neither a new image nor a restart. Publishing loads the file
as the classifier would (shape check, warm-up pass) and refuses one that could not serve;
the same bytes published twice are stored once. `promote` moves the `current` pointer,
and a rollback is a promote of the version before. NATS is reached as the services reach
it, through `MODELS_NATS_URL` (and the other `NATS_*` settings, prefixed `MODELS_`).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic_settings import SettingsConfigDict

from meshkit.broker_layout import BrokerSettings, declare_model_repository
from meshkit.model_repository import (
    ModelNotFoundError,
    PublishedModel,
    current_model_version,
    describe_model,
    model_version,
    promote_model,
    publish_model,
    release_history,
)
from meshkit.settings import NatsSettings


class PublishSettings(NatsSettings, BrokerSettings):
    """The broker the repository lives on; `MODELS_NATS_URL` and friends."""

    model_config = SettingsConfigDict(env_prefix="MODELS_", frozen=True, extra="ignore")


class RefusedModelError(ValueError):
    """The file or its metrics cannot be published (the reason is the message); like every
    ValueError here, it ends the tool with status 1 and the reason, not a traceback."""


def read_metrics(path: Path, version: str) -> dict[str, Any]:
    """The JSON object of `make eval`'s last line (a file of its whole output works too);
    metrics measured on another model are refused rather than attached to this one."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise RefusedModelError(f"{path} is empty")
    try:
        metrics = json.loads(lines[-1])
    except json.JSONDecodeError:
        try:
            metrics = json.loads("\n".join(lines))
        except json.JSONDecodeError as error:
            raise RefusedModelError(f"{path} holds no `make eval` JSON: {error}") from error
    if not isinstance(metrics, dict):
        raise RefusedModelError(f"{path} does not end with a JSON object")
    measured = metrics.get("model_version")
    if measured is not None and measured != version:
        raise RefusedModelError(f"{path} measured model {measured}, not {version}")
    return metrics


def check_servable(path: Path) -> None:
    """Load the file as the classifier does; RefusedModelError when it could not serve."""
    from services.classifier.model import WeatherModel  # TensorFlow: only when publishing

    try:
        WeatherModel.load(path)
    except Exception as error:
        raise RefusedModelError(f"{path} cannot be served: {error}") from error


def describe(model: PublishedModel) -> str:
    accuracy = (model.metrics or {}).get("accuracy", "-")
    return (
        f"{model.version}  {model.size} bytes  by {model.published_by or '-'}  "
        f"at {model.published_at or '-'}  accuracy {accuracy}"
    )


async def _connect(settings: PublishSettings) -> tuple[Client, JetStreamContext]:
    password = settings.nats_password()
    client = await nats.connect(
        servers=settings.nats_servers,
        user=settings.nats_user,
        password=password.get_secret_value() if password is not None else None,
        connect_timeout=settings.nats_connect_timeout_seconds,
        max_reconnect_attempts=0,
    )
    jetstream = client.jetstream()
    await declare_model_repository(jetstream, settings)
    return client, jetstream


async def run(arguments: argparse.Namespace, settings: PublishSettings) -> str:
    client, jetstream = await _connect(settings)
    try:
        if arguments.command == "publish":
            from services.classifier.model import DEFAULT_MODEL_PATH

            arguments.model = arguments.model or DEFAULT_MODEL_PATH
            model_bytes = arguments.model.read_bytes()
            metrics = (
                read_metrics(arguments.metrics, model_version(model_bytes))
                if arguments.metrics
                else None
            )
            await asyncio.to_thread(check_servable, arguments.model)
            model, stored = await publish_model(
                jetstream,
                model_bytes,
                published_by=arguments.by,
                published_at=datetime.now(UTC),
                metrics=metrics,
            )
            verb = "published" if stored else "already published (nothing stored)"
            return f"{verb}: {describe(model)}"
        if arguments.command == "promote":
            previous = await current_model_version(jetstream)
            await promote_model(jetstream, arguments.version)
            return f"current: {arguments.version} (was {previous or 'unset: the shipped file'})"
        current = await current_model_version(jetstream)
        lines = [f"current: {current or 'unset: classifiers serve their shipped file'}"]
        for version in await release_history(jetstream):
            lines.append(f"  promoted: {describe(await describe_model(jetstream, version))}")
        return "\n".join(lines)
    finally:
        await client.close()


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    publish = commands.add_parser("publish", help="store a .keras file under its version")
    publish.add_argument("model", type=Path, nargs="?", help="default: the shipped file")
    publish.add_argument("--metrics", type=Path, default=None, help="`make eval` output (JSON)")
    publish.add_argument(
        "--by", default=f"{getpass.getuser()}@{socket.gethostname()}", help="who publishes"
    )
    promote = commands.add_parser("promote", help="point `current` at a published version")
    promote.add_argument("version", help="sha256:<12 hex digits>, as `publish` printed it")
    commands.add_parser("show", help="the current pointer and its history")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        print(asyncio.run(run(arguments, PublishSettings())))
    except (ValueError, ModelNotFoundError, OSError, nats.errors.Error) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
