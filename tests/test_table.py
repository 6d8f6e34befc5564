"""``--format table``: the verdict lines for people, with the count of each verdict at the end."""

from __future__ import annotations

from function import verdict as v
from function.table import render_verdicts
from function.verdict import Kind, Origin, Verdict

PATH = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images/pause"
DIGEST = "sha256:" + "ab" * 32


def test_rows_in_order_then_the_counts_alarms_last() -> None:
    lines = [
        Verdict(Kind.VERIFIED, "ok", "INSERT", PATH, DIGEST, "3.9", basis=v.Basis.LISTED, image="pause").fields(),
        Verdict(
            Kind.RETRY, "open", "INSERT", PATH, None, "3.9", reason="registry unavailable", registry_calls=4
        ).fields(),
        Verdict(Kind.MALFORMED, "bad", reason="payload is not JSON: " + "x" * 100).fields(),
        Verdict(
            Kind.MISSING, "gone", None, PATH, DIGEST, None, reason="absent", image="pause", source=Origin.SWEEP
        ).fields(),
        Verdict(Kind.REJECTED, "no", "DELETE", PATH, DIGEST, None, reason="deletion", image="pause").fields(),
        Verdict(Kind.VERIFIED, "ok", "INSERT", PATH, DIGEST, None, basis=v.Basis.LISTED, image="pause").fields(),
    ]
    rows = render_verdicts(lines).splitlines()
    assert rows[0].split() == ["verdict", "basis", "/", "reason", "action", "repository@digest:tag", "image", "calls"]
    assert set(rows[1]) == {"-", " "}
    body = [row.split() for row in rows[2:8]]
    assert body[0] == ["VERIFIED", "listed", "INSERT", f"{PATH}@sha256:abababababab…:3.9", "pause", "0"]
    assert body[1][:3] == ["RETRY", "registry", "unavailable"] and body[1][-2:] == ["-", "4"]
    assert body[2][0] == "MALFORMED" and "(not a registry event)" in rows[4] and "…" in rows[4]
    assert body[3][:4] == ["MISSING", "absent", "-", f"{PATH}@sha256:abababababab…"]
    assert body[4][:3] == ["REJECTED", "deletion", "DELETE"]
    # Columns line up: every row starts its reference at the same place.
    assert len({row.index(PATH) for row in rows[2:8] if PATH in row}) == 1
    assert rows[-2:] == ["", "6 verdicts: 2 VERIFIED, 1 RETRY, 1 MISSING, 1 MALFORMED, 1 REJECTED"]


def test_no_verdicts() -> None:
    assert render_verdicts([]).splitlines()[-1] == "0 verdicts"
