"""Every gRPC method path our servers answer, read from the compiled descriptors.

A method path in a policy or a route is only as good as its spelling: Istio matches strings, so
`/weather.v1.DispatcherService/Sumbit` would silently allow or route nothing. The truth is the
generated code under gen/python (our protos) plus the standard health and reflection services
every server registers (meshkit.server).
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import pkgutil

from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

import weather.v1


def _paths_of(file_descriptor: FileDescriptor) -> set[str]:
    return {
        f"/{service.full_name}/{method.name}"
        for service in file_descriptor.services_by_name.values()
        for method in service.methods
    }


@functools.cache
def known_method_paths() -> frozenset[str]:
    """All method paths of weather.v1 (every generated *_pb2 module), health and reflection."""
    files = [health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR]
    for module in pkgutil.iter_modules(weather.v1.__path__):
        if module.name.endswith("_pb2"):
            files.append(importlib.import_module(f"weather.v1.{module.name}").DESCRIPTOR)
    return frozenset(path for file in files for path in _paths_of(file))


def matching_paths(pattern: str) -> set[str]:
    """Known paths an Istio path pattern selects (exact, `prefix*`, `*suffix` or `*`)."""
    return {path for path in known_method_paths() if fnmatch.fnmatchcase(path, pattern)}
