"""Command line: `python -m devmesh up | install | envoy-config`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devmesh.binaries import MissingBinaryError, find_tool, install_postgres
from devmesh.envoy import EnvoyConfigError, EnvoyProxy
from devmesh.runner import up
from devmesh.settings import MeshSettings


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devmesh", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="start the whole mesh in the foreground")
    commands.add_parser("install", help="install the PostgreSQL server if it is missing")
    render = commands.add_parser("envoy-config", help="render and validate the Envoy config")
    render.add_argument("--output", type=Path, help="default: $DEVMESH_DATA_DIR/envoy/envoy.yaml")
    arguments = parser.parse_args(argv)
    if arguments.command == "up":
        return up()
    if arguments.command == "install":
        return install()
    return envoy_config(arguments.output)


if __name__ == "__main__":
    sys.exit(main())
