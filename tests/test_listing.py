"""Listing a registry: pagination against Debian's registry, and the untrusted answers' parsers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from function.registry.client import RegistryUnavailable, _next_page
from function.registry.listing import HostWalk, Listed, UnreadableListing, _extension_entries, outermost
from tests.support import registry as reg
from tests.support.auditing import client
from tests.support.proxy import RegistryProxy
from tests.test_untrusted_inputs import digests, json_values

HOST = "registry.example:5000"


@pytest.mark.registry
def test_the_catalog_is_followed_page_by_page(registry_proxy: RegistryProxy) -> None:
    root = f"listing-{uuid.uuid4().hex[:8]}/images"
    digests_by_tag = {}
    for n in range(3):
        for tag in ("v1", "v2", "v3"):
            digests_by_tag[(n, tag)] = reg.push_image(registry_proxy.host, f"{root}/img{n}", tag=tag, seed=f"{n}{tag}")
    registry_proxy.clear()

    def walk(page_size: int) -> dict[str, dict[str, set[str]]]:
        listed = HostWalk(client(frozenset({registry_proxy.host})), registry_proxy.host, [root], page_size=page_size)
        found = {}
        for item in listed:
            assert isinstance(item, Listed) and not item.complete
            found[item.path] = {d: held.tags for d, held in item.manifests.items()}
        return found

    whole = walk(1000)
    assert whole == {
        f"{registry_proxy.host}/{root}/img{n}": {digests_by_tag[(n, t)]: {t} for t in ("v1", "v2", "v3")}
        for n in range(3)
    }
    registry_proxy.clear()
    assert walk(2) == whole
    # Pages of two: the Link header's next page carries distribution's `last` marker (distribution 2.8
    # answers tags/list in one page whatever `n`; the same code follows its Link where a registry sends one).
    followed = [r for r in registry_proxy.registry_requests() if "last=" in r.query]
    assert [r.path for r in followed] == ["/v2/_catalog"] * len(followed) and followed


def test_outermost_roots_list_each_repository_once() -> None:
    roots = ["p/images/kubernetes", "p/images", "p/images", "p/imagesx", "q"]
    assert outermost(roots) == ["q", "p/images", "p/imagesx"]


extension_documents = st.fixed_dictionaries(
    {},
    optional={
        "child": st.lists(st.text(max_size=12), max_size=4) | json_values,
        "manifest": st.dictionaries(
            digests,
            st.fixed_dictionaries(
                {}, optional={"mediaType": st.text(max_size=30) | json_values, "tag": st.lists(st.text(max_size=10))}
            )
            | json_values,
            max_size=4,
        )
        | json_values,
        "tags": json_values,
    },
)


@settings(max_examples=300)
@given(extension_documents | json_values)
def test_extension_answers(document: Any) -> None:
    try:
        manifests, children = _extension_entries(document, f"{HOST}/p/images")
    except UnreadableListing as error:
        assert str(error).startswith(f"{HOST}/p/images: ")
    else:
        assert all(d.startswith("sha256:") and len(d) == 71 for d in manifests)
        assert all(isinstance(child, str) and child for child in children)


@settings(max_examples=300)
@given(
    st.text(max_size=80)
    | st.builds(
        lambda target, rel: f"<{target}>; rel={rel}", st.text(max_size=60), st.sampled_from(['"next"', "next", "prev"])
    )
)
def test_link_headers(link: str) -> None:
    try:
        page = _next_page(HOST, f"{HOST}/v2/_catalog", link)
    except RegistryUnavailable as error:
        assert "not followed" in str(error)
    else:
        assert page is None or page.startswith("/v2/")


def test_a_next_page_on_another_host_is_refused() -> None:
    assert _next_page(HOST, "x", '</v2/_catalog?last=a&n=2>; rel="next"') == "/v2/_catalog?last=a&n=2"
    assert _next_page(HOST, "x", f'<https://{HOST}/v2/_catalog?n=2>; rel="next"') == "/v2/_catalog?n=2"
    for elsewhere in ("http://169.254.169.254/v2/x", "https://evil.example/v2/_catalog", "/metadata"):
        with pytest.raises(RegistryUnavailable):
            _next_page(HOST, "x", f'<{elsewhere}>; rel="next"')
