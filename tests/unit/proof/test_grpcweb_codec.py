"""The hand-written gRPC-Web codec against the wire format's own rules."""

from __future__ import annotations

import base64

import pytest

from tools.proof import grpcweb
from tools.proof.gateway import decode_reply


def test_frames_round_trip_with_trailers() -> None:
    body = (
        grpcweb.frame(b"one")
        + grpcweb.frame(b"two")
        + grpcweb.frame(
            b"grpc-status: 5\r\ngrpc-message: no such job\r\n", flag=grpcweb.TRAILER_FLAG
        )
    )
    reply = grpcweb.parse_frames(body)
    assert reply.messages == [b"one", b"two"]
    assert reply.trailers == {"grpc-status": "5", "grpc-message": "no such job"}


def test_text_body_may_be_several_padded_chunks() -> None:
    chunks = base64.b64encode(grpcweb.frame(b"a")) + base64.b64encode(grpcweb.frame(b"bc"))
    assert grpcweb.parse_frames(grpcweb.from_text(chunks)).messages == [b"a", b"bc"]


def test_invalid_base64_is_a_framing_error() -> None:
    with pytest.raises(grpcweb.FramingError):
        grpcweb.from_text(b"!!!*")


def test_frame_that_declares_more_than_arrived_is_refused() -> None:
    with pytest.raises(grpcweb.FramingError):
        grpcweb.parse_frames(grpcweb.frame(b"abcdef")[:-2])


def test_status_comes_from_headers_for_a_trailers_only_reply() -> None:
    outcome = decode_reply(200, {"grpc-status": "3", "grpc-message": "bad%20id"}, b"", text=False)
    assert (outcome.code, outcome.message) == ("INVALID_ARGUMENT", "bad id")


def test_plain_http_answer_without_grpc_status_is_named_by_http_status() -> None:
    assert decode_reply(431, {}, b"", text=False).code == "HTTP 431"
