"""Istio's documented authorization semantics, in plain Python, to judge our policies offline.

What is modelled (istio.io, "Authorization Policy" reference and concepts):
- PeerAuthentication: the workload's own policy (selector, its namespace) beats the namespace's
  beats the mesh-wide one in the root namespace; `portLevelMtls` overrides the mode per
  container port; UNSET inherits. Under STRICT a plaintext connection is refused; plaintext
  that is admitted carries no principal (so no `principals`/`namespaces` can match it).
- RequestAuthentication: a token is verified only by a proxy a RequestAuthentication selects;
  a token with another issuer or audience is refused (401); no token = no request principal.
- AuthorizationPolicy: policies selecting the workload (its namespace, or the root namespace
  mesh-wide; `selector.matchLabels` a subset of its labels; none = all) are evaluated CUSTOM,
  then DENY, then ALLOW: any matching CUSTOM or DENY refuses; with no ALLOW policy the request
  is allowed; otherwise it must match an ALLOW policy. A policy matches if one of its rules
  does; a rule matches if one `from`, one `to` and every `when` match (absent = any).
  String patterns are exact, `prefix*`, `*suffix` or `*` (any non-empty value).
  On TCP traffic (no HTTP request: `path` is None) a rule using HTTP-only fields never matches
  for ALLOW and CUSTOM, and for DENY those fields are ignored (the rule matches more).
- Only workloads with a proxy are guarded at all; others (kube-dns, istiod, anything outside
  the mesh) accept whatever the network lets through, which is NetworkPolicy's job.

A field this module does not know raises UnsupportedPolicyError: a policy is never judged
by a silently ignored condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.unit.istio.manifests import Manifest

ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"


class UnsupportedPolicyError(ValueError):
    """A policy uses a field or condition key this evaluator does not model."""


def istio_string_match(pattern: str, value: str | None) -> bool:
    """Istio's string match: exact, `prefix*`, `*suffix`, or `*` for any non-empty value."""
    if value is None or value == "":
        return False
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


@dataclass(frozen=True)
class Workload:
    """A party of the flow table; `labels` are the pod labels policies select on."""

    name: str
    namespace: str | None = None
    service_account: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    external: bool = False

    @property
    def principal(self) -> str | None:
        if self.namespace is None or self.service_account is None:
            return None
        return f"{TRUST_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"


@dataclass(frozen=True)
class Request:
    """One connection (path None) or one HTTP request (gRPC: POST to the method path)."""

    source: Workload
    destination: Workload
    port: int
    mtls: bool
    path: str | None = None
    http_method: str | None = None
    jwt_claims: Mapping[str, Any] | None = None  # a signed token's claims, if the caller sent one


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True)
class _Attributes:
    """What the destination's proxy knows about the request after authentication."""

    principal: str | None
    source_namespace: str | None
    request_principal: str | None
    claims: Mapping[str, Any]
    port: int
    path: str | None
    http_method: str | None

    @property
    def is_http(self) -> bool:
        return self.path is not None


HTTP_ONLY_SOURCE = {"requestPrincipals", "notRequestPrincipals"}
SOURCE_FIELDS = {"principals", "notPrincipals", "namespaces", "notNamespaces"} | HTTP_ONLY_SOURCE
HTTP_ONLY_OPERATION = {"methods", "notMethods", "paths", "notPaths"}  # hosts: not modelled
OPERATION_FIELDS = {"ports", "notPorts"} | HTTP_ONLY_OPERATION


def _selects(selector: Mapping[str, Any] | None, workload: Workload) -> bool:
    labels = (selector or {}).get("matchLabels", {})
    return all(workload.labels.get(key) == value for key, value in labels.items())


def _any_match(patterns: Iterable[str], value: str | None) -> bool:
    return any(istio_string_match(pattern, value) for pattern in patterns)


def _positive_negative(spec: Mapping[str, Any], name: str, value: str | None) -> bool:
    """`name` (any pattern matches) and `notName` (no pattern matches), each only when present."""
    negative = "not" + name[0].upper() + name[1:]
    if name in spec and not _any_match(spec[name], value):
        return False
    return not (negative in spec and _any_match(spec[negative], value))


class MeshPolicy:
    """The Istio objects of one mesh, able to decide any Request."""

    def __init__(self, manifests: Sequence[Manifest], root_namespace: str = ROOT_NAMESPACE):
        self.root_namespace = root_namespace
        self._by_kind: dict[str, list[Manifest]] = {}
        for manifest in manifests:
            self._by_kind.setdefault(manifest["kind"], []).append(manifest)

    def _objects(self, kind: str) -> list[Manifest]:
        return self._by_kind.get(kind, [])

    # --- which workloads have a proxy -----------------------------------------------------------
    def is_gateway(self, workload: Workload) -> bool:
        return any(
            all(workload.labels.get(k) == v for k, v in gw["spec"].get("selector", {}).items())
            for gw in self._objects("Gateway")
        )

    def is_proxied(self, workload: Workload) -> bool:
        """Has an Envoy in front: an ingress gateway, or a pod of a namespace we inject.

        Injected namespaces are those with a namespace-wide Sidecar (sidecars.yaml gives each
        one a default), a fact independent of the authorization policies under test.
        """
        if workload.external or workload.namespace is None:
            return False
        injected = {
            sidecar["metadata"]["namespace"]
            for sidecar in self._objects("Sidecar")
            if "workloadSelector" not in sidecar["spec"]
        }
        return workload.namespace in injected or self.is_gateway(workload)

    # --- peer authentication --------------------------------------------------------------------
    def peer_mode(self, workload: Workload, port: int) -> str:
        """Effective mTLS mode for `workload`'s container `port` (STRICT, PERMISSIVE, DISABLE)."""
        candidates = self._objects("PeerAuthentication")
        own = [
            pa
            for pa in candidates
            if pa["metadata"]["namespace"] == workload.namespace
            and "selector" in pa["spec"]
            and _selects(pa["spec"]["selector"], workload)
        ]
        namespace_wide = [
            pa
            for pa in candidates
            if pa["metadata"]["namespace"] == workload.namespace and "selector" not in pa["spec"]
        ]
        mesh_wide = [
            pa
            for pa in candidates
            if pa["metadata"]["namespace"] == self.root_namespace and "selector" not in pa["spec"]
        ]
        mode = "PERMISSIVE"  # Istio's default when no policy says otherwise
        for level in (mesh_wide, namespace_wide, own):
            for pa in level:
                level_mode = pa["spec"].get("mtls", {}).get("mode", "UNSET")
                port_level = pa["spec"].get("portLevelMtls", {}).get(str(port))
                if port_level is not None and port_level.get("mode", "UNSET") != "UNSET":
                    level_mode = port_level["mode"]
                if level_mode != "UNSET":
                    mode = level_mode
        return str(mode)

    # --- request authentication -----------------------------------------------------------------
    def _jwt_rules(self, workload: Workload) -> list[Mapping[str, Any]]:
        return [
            rule
            for ra in self._objects("RequestAuthentication")
            if ra["metadata"]["namespace"] in (workload.namespace, self.root_namespace)
            and _selects(ra["spec"].get("selector"), workload)
            for rule in ra["spec"].get("jwtRules", [])
        ]

    # --- the decision ---------------------------------------------------------------------------
    def decide(self, request: Request) -> Decision:
        destination = request.destination
        if not self.is_proxied(destination):
            return Decision(True, f"{destination.name} has no proxy: only NetworkPolicy applies")
        principal: str | None = None
        source_namespace: str | None = None
        if not self.is_gateway(destination):
            mode = self.peer_mode(destination, request.port)
            if mode == "STRICT" and not request.mtls:
                return Decision(False, f"STRICT mTLS on port {request.port} refuses plaintext")
            if request.mtls and mode != "DISABLE":
                principal = request.source.principal
                source_namespace = request.source.namespace
        request_principal: str | None = None
        claims: Mapping[str, Any] = {}
        jwt_rules = self._jwt_rules(destination)
        if request.jwt_claims is not None and request.path is not None and jwt_rules:
            verdict = _verify_token(request.jwt_claims, jwt_rules)
            if verdict is not None:
                return verdict
            claims = request.jwt_claims
            request_principal = f"{claims['iss']}/{claims['sub']}"
        attributes = _Attributes(
            principal=principal,
            source_namespace=source_namespace,
            request_principal=request_principal,
            claims=claims,
            port=request.port,
            path=request.path,
            http_method=request.http_method,
        )
        return self._authorize(destination, attributes)

    def _policies_for(self, workload: Workload) -> list[Manifest]:
        return [
            policy
            for policy in self._objects("AuthorizationPolicy")
            if policy["metadata"]["namespace"] in (workload.namespace, self.root_namespace)
            and _selects(policy["spec"].get("selector"), workload)
        ]

    def _authorize(self, workload: Workload, attributes: _Attributes) -> Decision:
        policies = self._policies_for(workload)
        by_action: dict[str, list[Manifest]] = {"CUSTOM": [], "DENY": [], "ALLOW": [], "AUDIT": []}
        for policy in policies:
            by_action[policy["spec"].get("action", "ALLOW")].append(policy)
        for action in ("CUSTOM", "DENY"):
            for policy in by_action[action]:
                if _policy_matches(policy, attributes, action):
                    name = policy["metadata"]["name"]
                    return Decision(False, f"{action} policy {name} matches")
        if not by_action["ALLOW"]:
            return Decision(True, "no ALLOW policy selects the workload")
        for policy in by_action["ALLOW"]:
            if _policy_matches(policy, attributes, "ALLOW"):
                return Decision(True, f"ALLOW policy {policy['metadata']['name']} matches")
        return Decision(False, "no ALLOW policy matches")


def _verify_token(claims: Mapping[str, Any], jwt_rules: list[Mapping[str, Any]]) -> Decision | None:
    """None when a jwtRule accepts the token (issuer, and audience if the rule lists any)."""
    for rule in jwt_rules:
        if claims.get("iss") != rule["issuer"]:
            continue
        audiences = rule.get("audiences")
        token_audiences = claims.get("aud", [])
        if isinstance(token_audiences, str):
            token_audiences = [token_audiences]
        if audiences and not set(audiences) & set(token_audiences):
            return Decision(False, "401: token audience not accepted")
        return None
    return Decision(False, "401: token issuer not accepted")


def _policy_matches(policy: Manifest, attributes: _Attributes, action: str) -> bool:
    return any(_rule_matches(rule, attributes, action) for rule in policy["spec"].get("rules", []))


def _tcp_verdict(action: str) -> bool:
    """How a rule's HTTP-only field counts on TCP: never for ALLOW/CUSTOM, ignored for DENY."""
    return action == "DENY"


def _rule_matches(rule: Mapping[str, Any], attributes: _Attributes, action: str) -> bool:
    unknown = set(rule) - {"from", "to", "when"}
    if unknown:
        raise UnsupportedPolicyError(f"rule fields {sorted(unknown)}")
    if "from" in rule and not any(
        _source_matches(entry["source"], attributes, action) for entry in rule["from"]
    ):
        return False
    if "to" in rule and not any(
        _operation_matches(entry["operation"], attributes, action) for entry in rule["to"]
    ):
        return False
    return all(
        _condition_matches(condition, attributes, action) for condition in rule.get("when", [])
    )


def _unmatchable_on_tcp(
    entry: Mapping[str, Any],
    known: set[str],
    http_only: set[str],
    attributes: _Attributes,
    action: str,
) -> bool:
    """Reject fields we do not model; True when HTTP-only fields make the entry fail on TCP."""
    unknown = set(entry) - known
    if unknown:
        raise UnsupportedPolicyError(f"fields {sorted(unknown)} are not modelled")
    return not attributes.is_http and bool(set(entry) & http_only) and not _tcp_verdict(action)


def _source_matches(source: Mapping[str, Any], attributes: _Attributes, action: str) -> bool:
    if _unmatchable_on_tcp(source, SOURCE_FIELDS, HTTP_ONLY_SOURCE, attributes, action):
        return False
    return (
        _positive_negative(source, "principals", attributes.principal)
        and _positive_negative(source, "namespaces", attributes.source_namespace)
        and (
            not attributes.is_http
            or _positive_negative(source, "requestPrincipals", attributes.request_principal)
        )
    )


def _operation_matches(operation: Mapping[str, Any], attributes: _Attributes, action: str) -> bool:
    if _unmatchable_on_tcp(operation, OPERATION_FIELDS, HTTP_ONLY_OPERATION, attributes, action):
        return False
    return _positive_negative(operation, "ports", str(attributes.port)) and (
        not attributes.is_http
        or (
            _positive_negative(operation, "methods", attributes.http_method)
            and _positive_negative(operation, "paths", attributes.path)
        )
    )


def _condition_value(key: str, attributes: _Attributes) -> tuple[list[str], bool]:
    """The values a `when` key has for this request, and whether the key is HTTP-only."""
    if key.startswith("request.auth.claims[") and key.endswith("]"):
        claim = attributes.claims.get(key[len("request.auth.claims[") : -1])
        values = claim if isinstance(claim, list) else [] if claim is None else [claim]
        return [str(value) for value in values], True
    if key == "request.auth.principal":
        return [attributes.request_principal or ""], True
    if key == "source.principal":
        return [attributes.principal or ""], False
    if key == "source.namespace":
        return [attributes.source_namespace or ""], False
    if key == "destination.port":
        return [str(attributes.port)], False
    raise UnsupportedPolicyError(f"condition key {key!r}")


def _condition_matches(condition: Mapping[str, Any], attributes: _Attributes, action: str) -> bool:
    values, http_only = _condition_value(condition["key"], attributes)
    if http_only and not attributes.is_http:
        return _tcp_verdict(action)
    matched = any(_any_match(condition.get("values", []), value) for value in values)
    if "values" in condition and not matched:
        return False
    return not any(_any_match(condition.get("notValues", []), value) for value in values)
