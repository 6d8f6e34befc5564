"""Property-based tests for the sync's outside inputs: queued rebuild requests, their Pub/Sub envelopes,
GitHub's commit answers and pending records each fail only with their own, explained error."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from function.github import head, queue, webhook
from function.index.pending import Pending
from tests.test_untrusted_inputs import json_values

SECRET = "s3cret"
shas = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40) | st.text(max_size=41)
times = st.none() | st.sampled_from(["2026-11-01T10:00:00Z", "2026-11-01T10:00:00+02:00", "yesterday", ""])
requests_ = st.fixed_dictionaries({"commit": shas, "committed_at": times, "reason": st.text(max_size=8)})


@settings(max_examples=300)
@given(requests_ | json_values, st.booleans())
def test_queued_rebuild_requests(document: Any, signed: bool) -> None:
    data = json.dumps(document).encode()
    attributes = {"signature": webhook.signature(SECRET if signed else "other", data)}
    envelope = {"subscription": "s", "message": {"data": base64.b64encode(data).decode(), "attributes": attributes}}
    assert queue.is_envelope(envelope)
    try:
        request, _ = queue.delivered(envelope, SECRET)
    except queue.BadDelivery as error:
        assert str(error)
    else:
        assert signed and webhook.is_commit_sha(request.commit)


@settings(max_examples=300)
@given(json_values | st.fixed_dictionaries({"message": json_values, "subscription": json_values}))
def test_envelopes(document: Any) -> None:
    if not queue.is_envelope(document):
        return
    try:
        queue.delivered(document, SECRET)
    except queue.BadDelivery as error:
        assert str(error)


commit_answers = st.fixed_dictionaries(
    {
        "sha": shas | json_values,
        "commit": st.fixed_dictionaries({"committer": json_values | st.fixed_dictionaries({"date": times})}),
    }
)


@settings(max_examples=300)
@given(commit_answers | json_values)
def test_commit_answers(document: Any) -> None:
    try:
        pinned = head.parse(json.dumps(document).encode(), "https://api.github.com/x")
    except head.HeadError as error:
        assert "api.github.com" in str(error)
    else:
        assert webhook.is_commit_sha(pinned.sha)


@settings(max_examples=300)
@given(json_values | st.fixed_dictionaries({"commit": json_values, "committed_at": times, "recorded_at": json_values}))
def test_pending_records(document: Any) -> None:
    try:
        Pending.from_json(json.dumps(document).encode())
    except (KeyError, TypeError, ValueError) as error:
        # What PendingCommits.all() skips with a warning.
        assert error is not None
