"""How fresh an audit instance's index is: periodic and rate-limited generation checks, an unreadable
newer index, and would-be REJECTED verdicts held back while a sync is behind (issue 9).

The audit service runs in-process on a real local index store, with a simulated clock.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from function import verdict as v
from function.index.digests import Source
from tests.support.manifests import digest
from tests.support.rigs import AR, GRACE, REFRESH, AuditRig

EU = AR.replace("us-central1", "europe-west1")
OLD, NEW = digest("pause-3.9"), digest("pause-3.10")


@pytest.fixture
def rig(tmp_path: Path) -> AuditRig:
    return AuditRig(tmp_path)


def test_a_yanked_digest_is_rejected_once_the_refresh_interval_has_passed(rig: AuditRig) -> None:
    rig.publish({OLD: ["3.9"], NEW: ["3.10"]})
    assert rig.audit(NEW).verdict == v.Kind.VERIFIED
    rig.publish({OLD: ["3.9"]}, hour=1)  # 3.10 is yanked
    rig.clock.now += REFRESH - 1
    assert rig.audit(NEW).verdict == v.Kind.VERIFIED  # within the interval: the index in memory decides
    rig.clock.now += 1
    verdict = rig.audit(NEW)
    assert (verdict.verdict, verdict.reason) == (v.Kind.REJECTED, "unknown_digest")


def test_a_new_destination_is_audited_within_the_refresh_interval_without_a_reject_first(rig: AuditRig) -> None:
    rig.publish({OLD: ["3.9"]})
    stray = digest("never promoted")
    assert rig.audit(stray, path=f"{EU}/pause").reason == "not_audited"
    rig.publish({OLD: ["3.9"]}, destinations=(AR, EU), hour=1)
    rig.clock.now += REFRESH
    # Not IGNORED any more, and no REJECTED was needed to notice the new index.
    verdict = rig.audit(OLD, path=f"{EU}/pause")
    assert (verdict.verdict, verdict.basis) == (v.Kind.VERIFIED, "listed")
    assert rig.audit(stray, path=f"{EU}/pause").reason == "unknown_digest"


def test_a_burst_of_would_be_rejects_checks_the_generation_once_a_second(rig: AuditRig) -> None:
    rig.publish({OLD: ["3.9"]})
    rig.audit(OLD)
    lookups = rig.store.lookups
    for n in range(1000):
        rig.clock.now += 0.005  # 1,000 alarms in 5 seconds
        assert rig.audit(digest(f"stray-{n}")).verdict == v.Kind.REJECTED
    assert 4 <= rig.store.lookups - lookups <= 5
    assert rig.service.index.pending.reads <= 5


def test_steady_verified_traffic_checks_once_per_refresh_interval(rig: AuditRig) -> None:
    rig.publish({OLD: ["3.9"]})
    lookups, reads = rig.store.lookups, rig.store.reads
    for _ in range(3600):
        rig.clock.now += 1.0
        assert rig.audit(OLD).verdict == v.Kind.VERIFIED
    # Loaded at the first event, then checked every REFRESH seconds: 59 times in the hour.
    assert rig.store.lookups - lookups == 3600 / REFRESH - 1
    assert rig.store.reads - reads == 1  # loaded once, never again: no newer generation appeared
    assert rig.service.index.pending.reads == 3600 / REFRESH - 1  # the periodic look for a stuck sync


def test_an_unreadable_newer_index_is_reported_once_and_not_downloaded_per_event(rig: AuditRig) -> None:
    good = rig.publish({OLD: ["3.9"]})
    rig.audit(OLD)
    generation = rig.store.write(b'{"schema": 99}', if_generation=rig.store.generation())
    reads = rig.store.reads
    for n in range(20):
        rig.clock.now += 1.5
        verdict = rig.audit(digest(f"stray-{n}"))
        assert (verdict.verdict, verdict.reason) == (v.Kind.REJECTED, "unknown_digest")
    assert rig.store.reads - reads == 1
    [line] = rig.lines("freshness")
    assert (line["freshness"], line["severity"], line["generation"]) == ("index_unreadable", "ERROR", generation)
    assert "verdict" not in line
    # The verdicts still name the index that decided them.
    assert [line["index"]["commit"] for line in rig.lines("verdict")][-1] == good.commit
    # A newer, readable generation is loaded again.
    rig.publish({OLD: ["3.9"], NEW: ["3.10"]}, hour=2)
    rig.clock.now += REFRESH
    assert rig.audit(NEW).verdict == v.Kind.VERIFIED


def test_a_would_be_reject_waits_while_a_newer_commit_is_syncing(rig: AuditRig) -> None:
    published = rig.publish({OLD: ["3.9"]})
    rig.audit(OLD)
    rig.pending.record("b" * 40, "2026-11-01T05:00:00Z")  # merged; its sync is still rebuilding
    rig.clock.now += 1
    verdict = rig.audit(NEW)
    assert (verdict.verdict, verdict.reason) == (v.Kind.RETRY, "index behind")
    assert "b" * 40 in verdict.message
    # Deletions are alarms whatever the manifests say.
    assert rig.audit(OLD, action="DELETE").reason == "deletion"
    # The sync lands: the same event is VERIFIED.
    rig.publish({OLD: ["3.9"], NEW: ["3.10"]}, hour=5)
    rig.pending.clear(Source("b" * 40, "2026-11-01T05:00:00Z"))
    rig.clock.now += 1
    assert rig.audit(NEW).verdict == v.Kind.VERIFIED
    assert rig.pending.newer_than(published) == []


def test_pending_commits_older_than_the_index_hold_nothing_back(rig: AuditRig) -> None:
    rig.pending.record("a" * 40, "2026-10-31T23:00:00Z")  # a redelivered old push
    source = rig.publish({OLD: ["3.9"]}, hour=1)
    rig.pending.record(source.commit or "", source.committed_at)  # the published commit itself
    assert rig.audit(NEW).reason == "unknown_digest"
    assert rig.lines("freshness") == []


def test_after_the_grace_a_stuck_sync_is_an_alarm_of_its_own(rig: AuditRig) -> None:
    rig.publish({OLD: ["3.9"]})
    rig.pending.record("c" * 40, "2026-11-01T05:00:00Z")
    assert rig.audit(NEW).reason == "index behind"
    rig.clock.now += GRACE
    for _ in range(10):
        rig.clock.now += 1
        assert rig.audit(NEW).reason == "unknown_digest"  # decided against the index there is
    [line] = rig.lines("freshness")
    assert (line["freshness"], line["severity"], line["commit"]) == ("stale_sync", "ERROR", "c" * 40)
    assert line["pending_since"] == "2027-01-15T08:00:00+00:00"
    # Repeated once per refresh interval, and by the periodic check even when nothing is rejected.
    rig.clock.now += REFRESH
    assert rig.audit(OLD).verdict == v.Kind.VERIFIED
    assert len(rig.lines("freshness")) == 2
