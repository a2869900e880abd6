"""The mesh the DAST talks to, the three ways a client can reach it, and a seeded RNG."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from devmesh.tokens import LocalIssuer
from tools.dast.checks import CaseResult, judge
from tools.proof.gateway import NativeTransport, Transport, WebTransport
from tools.proof.mesh import Endpoints
from tools.proof.tokens import operator_metadata

MAX_CALLS_IN_FLIGHT = 4
Answer = TypeVar("Answer")


@dataclass
class Target:
    """`issuer` is the identity provider the mesh trusts: every case outside the auth
    category is sent as an operator, so that it reaches the code it means to test."""

    endpoints: Endpoints
    rng: random.Random
    issuer: LocalIssuer
    call_deadline: float = 10.0

    def __post_init__(self) -> None:
        self.operator = operator_metadata(self.issuer, "dast-operator")
        self.native = NativeTransport(self.endpoints.gateway)
        self.web = WebTransport(self.endpoints.host, self.endpoints.gateway_port)
        self.web_text = WebTransport(self.endpoints.host, self.endpoints.gateway_port, text=True)
        self._slots = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)

    @property
    def transports(self) -> list[Transport]:
        return [self.native, self.web, self.web_text]

    async def bounded(self, call: Awaitable[Answer]) -> Answer:
        async with self._slots:
            return await call

    async def close(self) -> None:
        await self.native.close()


async def judged(
    target: Target,
    category: str,
    cases: Iterable[tuple[str, Transport, str, bytes]],
) -> list[CaseResult]:
    """Send each (case, transport, method, message bytes) and judge the answers."""

    async def one(case: str, transport: Transport, method: str, message: bytes) -> CaseResult:
        outcome = await target.bounded(
            transport.call(method, message, deadline=target.call_deadline, metadata=target.operator)
        )
        return judge(
            CaseResult(category, case, transport.name, method, outcome.code, outcome.message)
        )

    return list(await asyncio.gather(*(one(*case) for case in cases)))
