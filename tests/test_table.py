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
    assert rows[0].split() == ["verdict", "basis", "/", "reason", "action", "repository:tag@digest", "calls"]
    assert set(rows[1]) == {"-", " "}
    body = [row.split() for row in rows[2:8]]
    # At 120 columns, the middle of the repository gives way to the reasons.
    short = "us-central1-docker.pkg.dev/…/pause"
    assert body[0] == ["VERIFIED", "listed", "INSERT", f"{short}:3.9@sha256:abababababab…", "0"]
    assert body[1][:3] == ["RETRY", "registry", "unavailable"] and body[1][-2:] == [
        "us-central1-docker.pkg.dev/…/images/pause:3.9",
        "4",
    ]
    assert body[2][0] == "MALFORMED" and "(not a registry event)" in rows[4] and "…" in rows[4]
    assert body[3][:4] == ["MISSING", "absent", "-", f"{short}@sha256:abababababab…"]
    assert body[4][:3] == ["REJECTED", "deletion", "DELETE"]
    # Columns line up: every row starts its reference at the same place.
    assert len({row.index("us-central1") for row in rows[2:8] if "us-central1" in row}) == 1
    assert rows[-2:] == ["", "6 verdicts: 2 VERIFIED, 1 RETRY, 1 MISSING, 1 MALFORMED, 1 REJECTED"]


def test_no_verdicts() -> None:
    assert render_verdicts([]).splitlines()[-1] == "0 verdicts"


def test_rows_fit_120_columns_and_a_missing_child_names_its_parent() -> None:
    deep = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images/kubernetes/kube-controller-manager"
    parent = "sha256:" + "cd" * 32
    lines = [
        Verdict(
            Kind.MISSING, "gone", None, deep, DIGEST, None, reason="absent", parent=parent, source=Origin.SWEEP
        ).fields(),
        Verdict(Kind.REJECTED, "no", "INSERT", deep, DIGEST, "v1.30.0-rc.1", reason="tag_mismatch").fields(),
    ]
    rows = render_verdicts(lines).splitlines()
    assert max(len(row) for row in rows) <= 120
    assert "absent child of sha256:cdcdcdcd…" in rows[2]
    # The middle of the repository gives way; host, image name, tag and digest stay.
    assert "…/kube-controller-manager:v1.30.0-rc.1@sha256:abababababab…" in rows[3].replace("…es/", "…/")
