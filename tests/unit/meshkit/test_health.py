import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from meshkit.health import NOT_SERVING, SERVING, Readiness


async def status_of(health: HealthServicer, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    response = await health.Check(request, context=None)
    return int(response.status)


async def test_not_serving_until_every_dependency_is_up() -> None:
    health = HealthServicer()
    readiness = Readiness(health, ["weather.v1.ReportingService"], ["nats", "postgres"])
    await readiness.publish()
    assert await status_of(health, "") == NOT_SERVING

    await readiness.set("nats", True)
    assert await status_of(health, "weather.v1.ReportingService") == NOT_SERVING

    await readiness.set("postgres", True)
    assert await status_of(health, "") == SERVING
    assert await status_of(health, "weather.v1.ReportingService") == SERVING


async def test_losing_a_dependency_flips_back_to_not_serving() -> None:
    health = HealthServicer()
    readiness = Readiness(health, [], ["nats"])
    await readiness.set("nats", True)
    assert await status_of(health, "") == SERVING
    await readiness.set("nats", False)
    assert await status_of(health, "") == NOT_SERVING
    assert not readiness.serving


async def test_draining_stays_not_serving_even_if_dependencies_return() -> None:
    health = HealthServicer()
    readiness = Readiness(health, [], ["nats"])
    await readiness.set("nats", True)
    await readiness.drain()
    await readiness.set("nats", False)
    await readiness.set("nats", True)
    assert not readiness.serving
    assert await status_of(health, "") == NOT_SERVING


async def test_unknown_dependency_is_a_programming_error() -> None:
    readiness = Readiness(HealthServicer(), [], ["nats"])
    with pytest.raises(KeyError, match="redis"):
        await readiness.set("redis", True)
