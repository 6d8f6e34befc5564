"""The auditor end to end on this machine: a promotion merges, its images land, and some pushes go wrong.

Everything is real and on loopback: Debian's registry (behind a proxy that counts requests and can fail
them), fake-gcs-server holding the index, the Pub/Sub emulator pushing topic ``gcr`` to
``functions-framework --target audit``, and ``sync_index`` fetching k8s.io commit tarballs from a local
server as it would from GitHub. Then a promotion half-fails and a push goes unannounced, and the ``sweep``
function finds both. Ends with a table of every verdict line the audit function and the sweep wrote.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from function.index.freshness import MIN_CHECK_INTERVAL
from tests.support import pubsub as pubsub_rig
from tests.support import registry as reg
from tests.support.functions import FunctionServer
from tests.support.gcs import GcsEmulator
from tests.support.stack import Stack, running

WORK = Path(__file__).resolve().parents[1] / ".demo"


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def sync(stack: Stack, commit: str, **kwargs: Any) -> None:
    response = stack.webhook(commit, **kwargs)
    body = response.json()
    print(
        f"   sync_index {commit}: HTTP {response.status_code} {body.get('status')}: "
        f"{body.get('message') or body.get('reason')}"
    )


def replay(stack: Stack, label: str, payloads: Sequence[dict[str, str] | str], rows: list[list[str]]) -> None:
    ids = [stack.publish(p) for p in payloads]
    verdicts = stack.verdicts_for(ids, timeout=120)
    for message_id in ids:
        line = verdicts[message_id]
        rows.append(
            [label, _event(line), line["verdict"], line["basis"] or line["reason"] or "", str(line["registry_calls"])]
        )


def _event(line: dict[str, Any]) -> str:
    if line["path"] is None:
        return "(not a registry event)"
    where = line["path"].split("/", 1)[1]
    what = f"@{line['digest'][7:19]}" if line["digest"] else ""
    if line["tag"]:
        what += f":{line['tag'][:24]}"
    return f"{line['action'].lower()} {where}{what}" if line["action"] else f"{where}{what}"


def sweep(stack: Stack, gcs: GcsEmulator, rows: list[list[str]]) -> list[dict[str, Any]]:
    """Run the ``sweep`` function once, as Cloud Scheduler does; returns its finding lines, also in the table."""
    env = {"AUDITOR_INDEX_URI": stack.store.uri, "STORAGE_EMULATOR_HOST": gcs.url}
    with FunctionServer("sweep", "http", env, stack.work) as function:
        started = time.monotonic()
        answer = requests.post(function.url, timeout=600)
        summary = answer.json()["sweep"]
        lines = [json.loads(line) for line in function.stdout_path.read_text().splitlines() if line.startswith("{")]
    findings = [line for line in lines if line.get("source") == "sweep"]
    for line in findings:
        rows.append(["sweep", _event(line), line["verdict"], line["reason"] or "", str(line["registry_calls"])])
    print(
        f"   sweep: HTTP {answer.status_code} in {time.monotonic() - started:.1f} s (the sweep itself "
        f"{summary['seconds']:.1f} s, the rest reading the index): {summary['repositories']} "
        f"repositories, {summary['manifests']} manifests, {summary['rejected']} REJECTED, {summary['missing']} "
        f"MISSING, complete {summary['complete']}, {summary['registry_calls']} registry calls"
    )
    return findings


def main() -> int:
    reason = pubsub_rig.missing()
    if reason or not Path(reg.REGISTRY_BINARY).exists():
        print(f"cannot run the demo: {reason or 'docker-registry is not installed'}", file=sys.stderr)
        return 2
    WORK.mkdir(exist_ok=True)
    rows: list[list[str]] = []
    with reg.RegistryServer() as registry, GcsEmulator() as gcs, pubsub_rig.PubSubEmulator() as pubsub:
        say("starting registry, GCS and Pub/Sub emulators, audit and sync_index on loopback")
        with running(registry, gcs, pubsub, WORK) as stack:
            host = stack.promotion.host
            print(f"   registry {host}, manifests and logs in {WORK}")
            say("commit-1 merges (pause: 3-platform OCI index, signed, attested, SBOM; logger: Docker list)")
            sync(stack, "commit-1")
            say("the promoter pushes pause and logger to 3 regional registries")
            replay(stack, "promotion", stack.promotion.events("pause") + stack.promotion.events("logger"), rows)
            say("commit-2 merges (etcd); the audit instance checks for a newer index before any REJECTED")
            sync(stack, "commit-2")
            # That check runs at most once a second; a real promoter pushes minutes after the merge.
            time.sleep(MIN_CHECK_INTERVAL)
            replay(stack, "promotion", stack.promotion.events("etcd"), rows)
            say("pushes nobody promoted")
            path = f"{host}/us-central1/images"
            stray = reg.push_image(registry.host, "us-central1/images/pause", seed="demo-unpromoted")
            pause = stack.promotion.artifacts["pause"][0].digest
            # A runnable image that names pause as its OCI 1.1 subject: it claims to be a referrer, is not one.
            hijack = reg.push_image(registry.host, "us-central1/images/pause", seed="demo-hijack", subject=pause)
            bad: list[dict[str, str] | str] = [
                {"action": "INSERT", "digest": f"{path}/pause@{stray}"},
                {"action": "INSERT", "digest": f"{path}/pause@{hijack}"},
                {"action": "INSERT", "digest": f"{path}/pause@{pause}", "tag": f"{path}/pause:latest"},
                {"action": "INSERT", "digest": f"{path}/backdoor@{stray}", "tag": f"{path}/backdoor:v1"},
                {"action": "INSERT", "tag": f"{path}/pause:sha256-{'0' * 64}.sig"},
                {"action": "DELETE", "digest": f"{path}/pause@{pause}"},
                {"action": "INSERT", "digest": f"127.0.0.1:9/k8s-staging-demo/pause@{stray}"},
                '{"action": "INSERT", "digest": "not a reference"}',
            ]
            replay(stack, "bad push", bad, rows)
            say("a registry outage while a new SBOM referrer arrives: RETRY, redelivered, then VERIFIED")
            etcd = stack.promotion.artifacts["etcd"][0].digest
            sbom = reg.push_referrer(registry.host, "asia-east1/images/etcd", etcd)
            lines = stack.outage({"action": "INSERT", "digest": f"{host}/asia-east1/images/etcd@{sbom}"})
            retries = lines[:-1]
            rows.append(["outage", _event(lines[0]), "RETRY", retries[0]["reason"], str(retries[0]["registry_calls"])])
            if len(retries) > 1:
                calls = sum(line["registry_calls"] for line in retries[1:])
                rows.append(["outage", f"... redelivered {len(retries) - 1} more times", "RETRY", "", str(calls)])
            final = lines[-1]
            rows.append(
                [
                    "outage",
                    _event(final),
                    final["verdict"],
                    final["basis"] or final["reason"] or "",
                    str(final["registry_calls"]),
                ]
            )
            say("k8s.io pushes that must not replace the index")
            sync(stack, "commit-2", secret="not-the-secret")
            sync(stack, "broken", committed_at="2027-01-01T00:00:00Z")
            sync(stack, "commit-1")
            say("lost in the dark: etcd's promotion to asia-east1 is undone, and a push's event never arrives")
            etcd_repo = "asia-east1/images/etcd"
            reg.delete_manifest(registry.host, etcd_repo, stack.promotion.artifacts["etcd"][0].digest)
            reg.push_image(registry.host, "europe-west1/images/pause", tag="3.10-debug", seed="demo-undelivered")
            say("the twice-daily sweep lists every region and checks it against the index")
            found = sweep(stack, gcs, rows)
            written = stack.audit.verdicts() + found
    print_table(rows, written)
    (WORK / "verdicts.json").write_text(json.dumps(written, indent=1))
    return 0


def print_table(rows: list[list[str]], written: list[dict[str, Any]]) -> None:
    say(
        f"{len(written)} verdict lines written by the audit function and the sweep (all of them in .demo/verdicts.json)"
    )
    header = ["step", "event (repository@digest:tag)", "verdict", "basis / reason", "calls"]
    rows = [[cell[:60] for cell in row] for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    counts: dict[str, int] = {}
    for line in written:
        counts[line["verdict"]] = counts.get(line["verdict"], 0) + 1
    print("\n" + ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items())))


if __name__ == "__main__":
    sys.exit(main())
