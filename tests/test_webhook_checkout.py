"""GitHub webhooks and commit tarballs: both are input from outside, checked before anything is built."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from function.github import checkout, webhook
from tests.support.functions import TarballServer


def test_signatures_are_checked_in_constant_time_against_the_secret() -> None:
    body = b'{"ref": "refs/heads/main"}'
    good = webhook.signature("s3cret", body)
    assert good.startswith("sha256=") and len(good) == 7 + 64
    assert webhook.verify("s3cret", body, good)
    assert not webhook.verify("s3cret", body + b" ", good)
    assert not webhook.verify("other", body, good)
    assert not webhook.verify("s3cret", body, None)
    assert not webhook.verify(None, body, good)
    assert not webhook.verify("", body, webhook.signature("", body))


SHA = "0123456789abcdef0123456789abcdef01234567"


def push(files: list[str], commits: int = 1) -> dict[str, object]:
    entry = {"added": [], "removed": [], "modified": files}
    return {"ref": "refs/heads/main", "after": SHA, "head_commit": {"timestamp": "t"}, "commits": [entry] * commits}


def test_pushes_that_touch_manifests() -> None:
    assert webhook.parse_push(push(["registry.k8s.io/images/p/images.yaml"]), "registry.k8s.io").touches_manifests
    assert webhook.parse_push(push(["registry.k8s.io/manifests/p/x.yaml"]), "registry.k8s.io").touches_manifests
    assert not webhook.parse_push(push(["infra/gcp/main.tf"]), "registry.k8s.io").touches_manifests
    # GitHub lists at most 20 commits: a longer push may touch files it does not list.
    assert webhook.parse_push(push(["README.md"], commits=20), "registry.k8s.io").touches_manifests
    parsed = webhook.parse_push(push([]), "registry.k8s.io")
    assert (parsed.ref, parsed.sha, parsed.committed_at) == ("refs/heads/main", SHA, "t")
    assert not parsed.deleted
    # An empty subdir: images/ and manifests/ at the top of the repository.
    assert webhook.parse_push(push(["images/p/images.yaml"]), "").touches_manifests
    assert not webhook.parse_push(push(["registry.k8s.io/images/p/images.yaml"]), "").touches_manifests
    assert webhook.parse_push({**push([]), "deleted": True}, "registry.k8s.io").deleted
    with pytest.raises(webhook.BadRequest):
        webhook.parse_push({"ref": "refs/heads/main"}, "registry.k8s.io")


@pytest.mark.parametrize("after", ["../../../etc", SHA.upper(), SHA[:39], SHA + "0", "main", f"{SHA[:39]}/"])
def test_a_push_names_its_commit_as_40_lowercase_hex_or_is_refused(after: str) -> None:
    # 'after' becomes part of the tarball URL: '..' segments or a branch name must never reach it.
    with pytest.raises(webhook.BadRequest, match="40 lowercase hex"):
        webhook.parse_push({**push([]), "after": after}, "registry.k8s.io")


def test_a_signature_header_that_is_not_ascii_is_a_failed_check_not_a_fault() -> None:
    body = b"{}"
    assert not webhook.verify("s3cret", body, "sha256=\u00e9" + "0" * 63)
    assert not webhook.verify("s3cret", body, "sha256=" + "é" * 64)


def tarball(entries: list[tuple[str, bytes | None, str | None]]) -> bytes:
    """(name, data, link target): data None with a target makes a symlink."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data, target in entries:
            info = tarfile.TarInfo(name)
            if target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = len(data or b"")
                tar.addfile(info, io.BytesIO(data or b""))
    return raw.getvalue()


def test_only_manifest_files_are_unpacked_from_a_tarball(tmp_path: Path) -> None:
    top = "k8s.io-abc/registry.k8s.io"
    data = tarball(
        [
            (f"{top}/images/p/images.yaml", b"- name: a\n", None),
            (f"{top}/manifests/p/promoter-manifest.yaml", b"registries: []\n", None),
            (f"{top}/README.md", b"not needed", None),
            ("k8s.io-abc/infra/secret.txt", b"not needed", None),
            (f"{top}/images/p/link.yaml", None, "/etc/passwd"),
        ]
    )
    with TarballServer() as server:
        server.files["abc.tar.gz"] = data
        root = checkout.download(f"{server.url}/abc.tar.gz", "registry.k8s.io", tmp_path)
    assert root == tmp_path / "tree" / top
    files = sorted(str(p.relative_to(tmp_path / "tree")) for p in (tmp_path / "tree").rglob("*") if p.is_file())
    assert files == [f"{top}/images/p/images.yaml", f"{top}/manifests/p/promoter-manifest.yaml"]
    with TarballServer() as server:
        server.files["evil.tar.gz"] = tarball([(f"{top}/images/../../../escape.yaml", b"escape", None)])
        with pytest.raises(checkout.CheckoutError, match="unsafe path"):
            checkout.download(f"{server.url}/evil.tar.gz", "registry.k8s.io", tmp_path / "evil")
    assert not list((tmp_path / "evil").rglob("*.yaml"))


def test_a_tarball_with_the_layout_at_its_top(tmp_path: Path) -> None:
    data = tarball([("k8s.io-abc/images/p/images.yaml", b"- name: a\n", None), ("k8s.io-abc/x.md", b"x", None)])
    with TarballServer() as server:
        server.files["abc.tar.gz"] = data
        root = checkout.download(f"{server.url}/abc.tar.gz", "", tmp_path)
    assert root == tmp_path / "tree" / "k8s.io-abc"
    assert [p.name for p in root.rglob("*") if p.is_file()] == ["images.yaml"]


def test_unusable_tarballs_are_faults_with_reasons(tmp_path: Path) -> None:
    with TarballServer() as server:
        server.files["empty.tar.gz"] = tarball([("k8s.io-abc/README.md", b"x", None)])
        server.files["junk.tar.gz"] = b"not a tarball"
        with pytest.raises(checkout.CheckoutError, match="answered 404"):
            checkout.download(f"{server.url}/missing.tar.gz", "registry.k8s.io", tmp_path / "a")
        with pytest.raises(checkout.CheckoutError, match="holds no single"):
            checkout.download(f"{server.url}/empty.tar.gz", "registry.k8s.io", tmp_path / "b")
        with pytest.raises(checkout.CheckoutError, match="not a readable tarball"):
            checkout.download(f"{server.url}/junk.tar.gz", "registry.k8s.io", tmp_path / "c")
    with pytest.raises(checkout.CheckoutError, match="over https"):
        checkout.download("http://github.com/kubernetes/k8s.io/archive/x.tar.gz", "registry.k8s.io", tmp_path)


def test_a_local_checkout_is_found_at_the_root_or_the_subdir(tmp_path: Path) -> None:
    (tmp_path / "registry.k8s.io" / "manifests").mkdir(parents=True)
    assert checkout.local_root(str(tmp_path), "registry.k8s.io") == tmp_path / "registry.k8s.io"
    assert checkout.local_root(str(tmp_path / "registry.k8s.io"), "registry.k8s.io") == tmp_path / "registry.k8s.io"
    with pytest.raises(checkout.CheckoutError):
        checkout.local_root(str(tmp_path / "nowhere"), "registry.k8s.io")
