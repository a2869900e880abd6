"""Facts the contract (protos/weather/v1) defines as enums, in the forms Python code uses.

Why read them from the generated code: the label set and the upload cap (like the job states,
see `job_states.py`, and the default ports, `weather.v1.defaults_pb2.DefaultPort`) are each
written once, in the protos, and the UI reads the very same enums from its generated
TypeScript. Nothing here may be re-typed elsewhere.
"""

from __future__ import annotations

from weather.v1 import defaults_pb2, job_pb2

MIB = 1024 * 1024


def wire_name(enum_name: str, prefix: str) -> str:
    """`LABEL_CLOUDY` → "cloudy": how a contract enum value is spelled as text."""
    return enum_name.removeprefix(prefix).lower()


LABELS: tuple[str, ...] = tuple(
    wire_name(name, "LABEL_") for name, value in job_pb2.Label.items() if value != 0
)
"""The classifier's labels, in the order of the model's outputs."""

MAX_UPLOAD_BYTES: int = defaults_pb2.LIMIT_MAX_UPLOAD_BYTES
UPLOAD_FRAMING_BYTES = MIB
"""Room above the upload cap for gRPC framing and the other request fields."""
