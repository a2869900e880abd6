"""`make dast`'s own logic on a small case set, and its judge on a planted bad answer."""

from __future__ import annotations

from pathlib import Path

from tools.dast.checks import CaseResult, judge
from tools.dast.run import category_rows, parse_arguments, probe
from tools.proof.mesh import LocalMesh

CATEGORY, CASES, OUTCOMES, VIOLATIONS, VERDICT = range(5)


async def test_small_case_set_reports_its_categories_and_a_planted_leak_is_flagged(
    proof_mesh: LocalMesh, weather_dataset: Path
) -> None:
    arguments = parse_arguments(["--categories", "cors", "auth", "--photos", str(weather_dataset)])
    results = await probe(proof_mesh, arguments)
    rows = {row[CATEGORY]: row for row in category_rows(results)}

    assert set(rows) == {"cors", "auth", "mesh"}
    assert rows["auth"][VIOLATIONS] == 0, [r for r in results if r.violations]
    assert rows["auth"][VERDICT] == "pass"
    assert rows["cors"][VIOLATIONS] == 0, [r for r in results if r.violations]
    assert rows["mesh"][VIOLATIONS] == 0, [r for r in results if r.violations]

    planted = judge(
        CaseResult(
            "protobuf",
            "planted",
            "grpc",
            "/weather.v1.DispatcherService/GetJob",
            "INVALID_ARGUMENT",
            'Traceback (most recent call last):\n  File "/srv/app.py", line 1, in <module>',
        )
    )
    rows = {row[CATEGORY]: row for row in category_rows([*results, planted])}
    assert rows["protobuf"][VERDICT] == "FAIL"
    assert rows["protobuf"][VIOLATIONS] == 2  # the traceback and the path
