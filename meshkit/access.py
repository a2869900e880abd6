"""Who may call what: the public RPCs, the least role each needs, and the interceptor.

The table below is the services' copy of the edge rules in `istio/request-authentication.yaml`
(tests/unit/istio checks that both say the same): Submit, GetJob, WatchJob, GiveFeedback and
ListJobs need a viewer, GetStats and GetQuality an operator. In anonymous demo mode Submit,
GetJob, WatchJob and GiveFeedback need no token at all. Methods outside the table (health,
reflection, the internal Classify) are not public: the gateway never routes them and the
mesh policies refuse them.

Two answers, never mixed up: UNAUTHENTICATED when the caller is not (validly) signed in, so
signing in may help; PERMISSION_DENIED when a valid caller's role lacks the right, so it
will not. Handlers read the verified caller with `current_caller()`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any, Final

import grpc

from meshkit.handler_wrapping import Behaviour, Handler, WrappingInterceptor, rewrapped
from meshkit.identity import (
    ANONYMOUS,
    TOKEN_REQUIRED,
    Caller,
    ForeignTokenError,
    IdentitySettings,
    KeysUnavailableError,
    Role,
    TokenVerifier,
    UnauthenticatedError,
    bearer_token,
)
from meshkit.safe_edge import Context
from weather.v1 import dispatcher_pb2, reporting_pb2


def method_path(file_descriptor: Any, service: str, method: str) -> str:
    """`/weather.v1.DispatcherService/Submit`, from the contract (never re-typed)."""
    descriptor = file_descriptor.services_by_name[service]
    return f"/{descriptor.full_name}/{descriptor.methods_by_name[method].name}"


SUBMIT = method_path(dispatcher_pb2.DESCRIPTOR, "DispatcherService", "Submit")
GET_JOB = method_path(dispatcher_pb2.DESCRIPTOR, "DispatcherService", "GetJob")
WATCH_JOB = method_path(dispatcher_pb2.DESCRIPTOR, "DispatcherService", "WatchJob")
GIVE_FEEDBACK = method_path(dispatcher_pb2.DESCRIPTOR, "DispatcherService", "GiveFeedback")
LIST_JOBS = method_path(reporting_pb2.DESCRIPTOR, "ReportingService", "ListJobs")
GET_STATS = method_path(reporting_pb2.DESCRIPTOR, "ReportingService", "GetStats")
GET_QUALITY = method_path(reporting_pb2.DESCRIPTOR, "ReportingService", "GetQuality")

LEAST_ROLE: Final[Mapping[str, Role]] = {
    SUBMIT: Role.VIEWER,
    GET_JOB: Role.VIEWER,
    WATCH_JOB: Role.VIEWER,
    GIVE_FEEDBACK: Role.VIEWER,
    LIST_JOBS: Role.VIEWER,
    GET_STATS: Role.OPERATOR,
    GET_QUALITY: Role.OPERATOR,
}
"""Every public RPC and the least role that may call it."""
ANONYMOUS_DEMO_METHODS: Final = frozenset({SUBMIT, GET_JOB, WATCH_JOB, GIVE_FEEDBACK})
"""What anonymous callers may do when the demo mode is on. GetJob/WatchJob take the job id
as a capability: whoever holds the (unguessable, 128-bit random) id may read that job.
GiveFeedback takes the id as the capability only for a job submitted anonymously; an owned
job's feedback is its owner's alone (the handler checks, since it needs the job)."""

logger = logging.getLogger(__name__)

_CALLER: ContextVar[Caller] = ContextVar("weather_mesh_caller")
AUTHORIZATION: Final = "authorization"


def current_caller() -> Caller:
    """The caller the interceptor verified for this RPC (a handler outside the table has
    none: asking is a bug, so it raises LookupError)."""
    return _CALLER.get()


def least_role(method: str, anonymous_demo: bool) -> Role | None:
    """The role `method` needs, None for a method outside the public table."""
    role = LEAST_ROLE.get(method)
    if role is not None and anonymous_demo and method in ANONYMOUS_DEMO_METHODS:
        return Role.ANONYMOUS
    return role


def method_name(method: str) -> str:
    return method.rsplit("/", 1)[-1]


class AccessInterceptor(WrappingInterceptor):
    """Verifies the caller of every public RPC and checks their role before the handler."""

    def __init__(self, verifier: TokenVerifier, anonymous_demo: bool) -> None:
        self._verifier = verifier
        self._anonymous_demo = anonymous_demo

    @classmethod
    def from_settings(cls, settings: IdentitySettings) -> AccessInterceptor:
        if settings.auth_jwks_file is None and settings.auth_jwks_uri is None:
            logger.warning(
                "no auth_jwks_file or auth_jwks_uri: every token will be refused%s",
                " (anonymous demo mode is on)" if settings.auth_anonymous_demo else "",
            )
        return cls(TokenVerifier(settings), settings.auth_anonymous_demo)

    def wrap(self, handler: Handler, method: str) -> Handler:
        needed = least_role(method, self._anonymous_demo)
        if needed is None:
            return handler
        return rewrapped(
            handler,
            lambda behaviour: self._checked_unary(method, needed, behaviour),
            lambda behaviour: self._checked_stream(method, needed, behaviour),
        )

    async def admit(self, method: str, needed: Role, context: Context) -> Caller:
        """The verified caller, or the call aborted with the status that fits."""
        values = [
            value if isinstance(value, str) else value.decode("utf-8", "replace")
            for key, value in (context.invocation_metadata() or ())
            if key == AUTHORIZATION
        ]
        try:
            token = bearer_token(values)
            caller = ANONYMOUS if token is None else await self._verifier.verify(token)
        except UnauthenticatedError as error:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(error))
        except ForeignTokenError as error:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
        except KeysUnavailableError:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "tokens cannot be verified right now; retry shortly"
            )
        if caller.role < needed:
            if caller.anonymous:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, TOKEN_REQUIRED)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method_name(method)} needs the {needed.label} role; "
                f"this token grants {caller.role.label}",
            )
        return caller

    def _checked_unary(self, method: str, needed: Role, behaviour: Behaviour) -> Behaviour:
        async def checked(request: Any, context: Context) -> Any:
            reset = _CALLER.set(await self.admit(method, needed, context))
            try:
                return await behaviour(request, context)
            finally:
                _CALLER.reset(reset)

        return checked

    def _checked_stream(self, method: str, needed: Role, behaviour: Behaviour) -> Behaviour:
        if not inspect.isasyncgenfunction(behaviour):
            return self._checked_unary(method, needed, behaviour)

        async def checked(request: Any, context: Context) -> AsyncIterator[Any]:
            _CALLER.set(await self.admit(method, needed, context))
            async for response in behaviour(request, context):
                yield response

        return checked
