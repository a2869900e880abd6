"""The evaluator follows Istio's documented semantics, checked on small made-up meshes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.istio.manifests import Manifest
from tests.unit.istio.mesh_eval import (
    MeshPolicy,
    Request,
    Workload,
    istio_string_match,
)

CLIENT = Workload("client", "shop", "client", {"app": "client"})
SERVER = Workload("server", "shop", "server", {"app": "server"})
INJECTED_SHOP = {
    "kind": "Sidecar",
    "metadata": {"name": "default", "namespace": "shop"},
    "spec": {"egress": [{"hosts": ["istio-system/*"]}]},
}


def _policy(namespace: str, action: str, rules: list[dict[str, Any]], **spec: Any) -> Manifest:
    return {
        "kind": "AuthorizationPolicy",
        "metadata": {"name": f"{action.lower()}-{len(rules)}", "namespace": namespace},
        "spec": {"action": action, "rules": rules, **spec},
    }


def _peer(namespace: str, mode: str, **spec: Any) -> Manifest:
    return {
        "kind": "PeerAuthentication",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"mtls": {"mode": mode}, **spec},
    }


def _allowed(objects: list[Manifest], request: Request) -> bool:
    return MeshPolicy([INJECTED_SHOP, *objects]).decide(request).allowed


GRPC = Request(CLIENT, SERVER, 8080, True, "/shop.v1.Cart/Add", "POST")
TCP = Request(CLIENT, SERVER, 8080, True)
CLIENT_PRINCIPAL = "cluster.local/ns/shop/sa/client"


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("*", "x", True),
        ("*", "", False),
        ("/shop.v1.*", "/shop.v1.Cart/Add", True),
        ("*/Add", "/shop.v1.Cart/Add", True),
        ("/shop.v1.Cart/Add", "/shop.v1.Cart/Ad", False),
    ],
)
def test_string_match(pattern: str, value: str, matches: bool) -> None:
    assert istio_string_match(pattern, value) is matches


def test_no_policy_allows_and_an_empty_allow_policy_denies_all() -> None:
    assert _allowed([], GRPC)
    empty = {"kind": "AuthorizationPolicy", "metadata": {"name": "n", "namespace": "shop"}}
    assert not _allowed([{**empty, "spec": {}}], GRPC)


def test_deny_wins_over_allow_and_custom_comes_first() -> None:
    allow_all = _policy("shop", "ALLOW", [{}])
    deny_path = _policy("shop", "DENY", [{"to": [{"operation": {"paths": ["/shop.v1.*"]}}]}])
    custom = _policy("shop", "CUSTOM", [{}], provider={"name": "ext"})
    assert _allowed([allow_all], GRPC)
    assert not _allowed([allow_all, deny_path], GRPC)
    assert not _allowed([allow_all, custom], GRPC)


def test_root_namespace_policies_apply_to_every_namespace_and_selectors_narrow() -> None:
    mesh_deny = _policy("istio-system", "DENY", [{}])
    other_selector = _policy("shop", "DENY", [{}], selector={"matchLabels": {"app": "other"}})
    foreign_namespace = _policy("bank", "DENY", [{}])
    assert not _allowed([mesh_deny], GRPC)
    assert _allowed([other_selector, foreign_namespace], GRPC)


def test_principals_need_mtls_and_not_principals_star_means_plaintext() -> None:
    by_principal = _policy(
        "shop", "ALLOW", [{"from": [{"source": {"principals": [CLIENT_PRINCIPAL]}}]}]
    )
    plaintext_only = _policy("shop", "ALLOW", [{"from": [{"source": {"notPrincipals": ["*"]}}]}])
    plaintext = Request(CLIENT, SERVER, 8080, False)
    permissive = _peer("istio-system", "PERMISSIVE")
    assert _allowed([permissive, by_principal], TCP)
    assert not _allowed([permissive, by_principal], plaintext)
    assert _allowed([permissive, plaintext_only], plaintext)
    assert not _allowed([permissive, plaintext_only], TCP)


def test_strict_refuses_plaintext_unless_the_workloads_port_is_excepted() -> None:
    plaintext = Request(CLIENT, SERVER, 9000, False)
    strict = _peer("istio-system", "STRICT")
    exception = {
        "kind": "PeerAuthentication",
        "metadata": {"name": "e", "namespace": "shop"},
        "spec": {
            "selector": {"matchLabels": {"app": "server"}},
            "portLevelMtls": {"9000": {"mode": "PERMISSIVE"}},
        },
    }
    assert not _allowed([strict], plaintext)
    assert _allowed([strict, exception], plaintext)
    assert not _allowed([strict, exception], Request(CLIENT, SERVER, 9001, False))


def test_http_only_fields_on_tcp_never_allow_and_always_deny() -> None:
    allow_path = _policy("shop", "ALLOW", [{"to": [{"operation": {"paths": ["/shop.v1.*"]}}]}])
    deny_get = _policy("shop", "DENY", [{"to": [{"operation": {"methods": ["GET"]}}]}])
    allow_all = _policy("shop", "ALLOW", [{}])
    assert _allowed([allow_path], GRPC)
    assert not _allowed([allow_path], TCP)
    assert _allowed([allow_all, deny_get], GRPC)  # POST is not GET
    assert not _allowed([allow_all, deny_get], TCP)  # on TCP the method is ignored: denied


def test_claims_conditions_need_a_verified_token() -> None:
    auth = {
        "kind": "RequestAuthentication",
        "metadata": {"name": "jwt", "namespace": "shop"},
        "spec": {"jwtRules": [{"issuer": "https://issuer", "audiences": ["shop"]}]},
    }
    admins = _policy(
        "shop",
        "ALLOW",
        [
            {
                "from": [{"source": {"requestPrincipals": ["*"]}}],
                "when": [{"key": "request.auth.claims[groups]", "values": ["admin"]}],
            }
        ],
    )
    token = {"iss": "https://issuer", "aud": ["shop"], "sub": "ann", "groups": ["admin"]}
    with_token = Request(CLIENT, SERVER, 8080, True, "/shop.v1.Cart/Add", "POST", token)
    assert _allowed([auth, admins], with_token)
    assert not _allowed([admins], with_token)  # nobody verified it: no request principal
    assert not _allowed([auth, admins], GRPC)
    forged = Request(CLIENT, SERVER, 8080, True, "/x", "POST", {**token, "iss": "https://evil"})
    assert not _allowed([auth, admins], forged)
