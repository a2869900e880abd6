"""Command line: `python -m devmesh up | install | envoy-config | token`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devmesh.binaries import MissingBinaryError, find_tool, install_postgres
from devmesh.envoy import EnvoyConfigError, EnvoyProxy
from devmesh.runner import up
from devmesh.settings import MeshSettings
from devmesh.tokens import DEFAULT_LIFETIME_SECONDS, SIGNED_IN_ROLES


def install() -> int:
    """Make sure every binary the mesh starts is present (quick when they are)."""
    try:
        for tool in ("nats-server", "envoy", "buf"):
            find_tool(tool)
        bin_dir = install_postgres()
    except MissingBinaryError as error:
        print(f"devmesh install: {error}", file=sys.stderr)
        return 1
    print(f"devmesh install: nats-server, envoy, buf and PostgreSQL ({bin_dir}) are present")
    return 0


def envoy_config(output: Path | None) -> int:
    """Render the gateway config from the environment's ports and check it with Envoy."""
    settings = MeshSettings()
    output = output or settings.devmesh_data_dir / "envoy" / "envoy.yaml"
    proxy = EnvoyProxy(
        settings.gateway(),
        config_path=output,
    )
    proxy.prepare()
    try:
        proxy.validate()
    except EnvoyConfigError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"{output}: valid")
    return 0


def token(role: str, subject: str, minutes: int) -> int:
    """Print a token for the local mesh, signed by `.data/identity`'s key (made if missing)."""
    issuer = MeshSettings().local_issuer()
    try:
        print(issuer.mint(subject, role, lifetime_seconds=minutes * 60))
    except ValueError as error:
        print(f"devmesh token: {error}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole mesh in the foreground")
    commands.add_parser("install", help="install the PostgreSQL server if it is missing")
    render = commands.add_parser("envoy-config", help="render and validate the Envoy config")
    render.add_argument("--output", type=Path, help="default: $DEVMESH_DATA_DIR/envoy/envoy.yaml")
    mint = commands.add_parser("token", help="print a short-lived token for the local mesh")
    mint.add_argument("--role", choices=SIGNED_IN_ROLES, default=SIGNED_IN_ROLES[0])
    mint.add_argument("--subject", required=True, help="who the token speaks for (its `sub`)")
    mint.add_argument("--minutes", type=int, default=DEFAULT_LIFETIME_SECONDS // 60)
    arguments = parser.parse_args(argv)
    if arguments.command == "token":
        return token(arguments.role, arguments.subject, arguments.minutes)
    if arguments.command == "up":
        return up()
    if arguments.command == "install":
        return install()
    return envoy_config(arguments.output)


if __name__ == "__main__":
    sys.exit(main())
