"""Property-based tests for the sync's outside inputs: queued rebuild requests, their Pub/Sub envelopes,
GitHub's commit answers and pending records each fail only with their own, explained error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function.github import head, queue, webhook
from function.index.pending import Pending
from function.services import oidc
from tests.support.oidc import CertServer, invokers
from tests.test_untrusted_inputs import json_values

shas = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40) | st.text(max_size=41)
times = st.none() | st.sampled_from(["2026-11-01T10:00:00Z", "2026-11-01T10:00:00+02:00", "yesterday", ""])
requests_ = st.fixed_dictionaries({"commit": shas, "committed_at": times, "reason": st.text(max_size=8)})


@settings(max_examples=300)
@given(requests_ | json_values)
def test_queued_rebuild_requests(document: Any) -> None:
    data = json.dumps(document).encode()
    envelope = {"subscription": "s", "message": {"data": base64.b64encode(data).decode()}}
    assert queue.is_envelope(envelope)
    try:
        request, _ = queue.delivered(envelope)
    except queue.BadDelivery as error:
        assert str(error)
    else:
        assert webhook.is_commit_sha(request.commit)


@settings(max_examples=300)
@given(json_values | st.fixed_dictionaries({"message": json_values, "subscription": json_values}))
def test_envelopes(document: Any) -> None:
    if not queue.is_envelope(document):
        return
    try:
        queue.delivered(document)
    except queue.BadDelivery as error:
        assert str(error)


tokens = st.text(max_size=200) | st.builds(
    ".".join,
    st.lists(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=60), max_size=4
    ),
)


@settings(max_examples=200)
@given(st.none() | st.builds("{} {}".format, st.sampled_from(["Bearer", "bearer", "Basic", ""]), tokens))
def test_authorization_headers(google_certs: CertServer, header: str | None) -> None:
    # Anything but a token of an invoker is Unauthenticated, never another error (a 500 to a caller).
    with pytest.raises(oidc.Unauthenticated):
        oidc.verify(invokers(google_certs), header)


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
