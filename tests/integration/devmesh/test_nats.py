from __future__ import annotations

import json
import urllib.request

import nats

from devmesh.nats import NatsServer


def _jetstream_config(server: NatsServer) -> dict[str, object]:
    with urllib.request.urlopen(f"{server.monitor_url}/jsz?config=true", timeout=5) as reply:
        config: dict[str, object] = json.load(reply)["config"]
    return config


async def test_nats_serves_jetstream_and_fsyncs_every_write(nats_server: NatsServer) -> None:
    config = _jetstream_config(nats_server)
    assert config["sync_always"] is True
    assert str(config["store_dir"]).startswith(str(nats_server.store_dir))

    client = await nats.connect(**nats_server.connect_options())
    try:
        info = await client.jetstream().account_info()
        assert info.limits is not None
    finally:
        await client.close()


async def test_stream_survives_restart_on_same_port_and_store(nats_server: NatsServer) -> None:
    client = await nats.connect(**nats_server.connect_options())
    jetstream = client.jetstream()
    await jetstream.add_stream(name="JOBS", subjects=["weather.job.>"])
    await jetstream.publish("weather.job.1.queued", b"queued")
    await client.close()
    port_before = nats_server.port

    nats_server.stop()
    nats_server.start()

    assert nats_server.port == port_before
    client = await nats.connect(**nats_server.connect_options())
    try:
        stream = await client.jetstream().stream_info("JOBS")
        assert stream.state.messages == 1
        message = await client.jetstream().get_last_msg("JOBS", "weather.job.1.queued")
        assert message.data == b"queued"
    finally:
        await client.close()
