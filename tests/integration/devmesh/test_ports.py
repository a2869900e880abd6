from __future__ import annotations

import socket

import pytest

from devmesh.ports import PortInUseError, ensure_free, free_port, is_free


def test_a_taken_port_is_named_with_its_owner_and_variable() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(PortInUseError) as caught:
            ensure_free(port, "NATS", env_var="NATS_PORT")

    assert str(caught.value) == (
        f"port {port} (NATS) is already in use on 127.0.0.1 — stop what holds it or set NATS_PORT"
    )


def test_a_free_port_passes() -> None:
    port = free_port()
    assert is_free(port)
    ensure_free(port, "Envoy", env_var="ENVOY_PORT")
