"""Getting the manifests of one k8s.io commit onto local disk: a folder as is, or a tarball download.

A tarball is untrusted input: only regular files under ``<subdir>/images/`` and ``<subdir>/manifests/``
are extracted, with Python's ``data`` filter (no links, devices, absolute paths or ``..``), and the
download and the extracted size are bounded.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from function.errors import Retryable
from function.index.manifests import folder_prefixes
from function.reference import is_loopback

MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
MAX_EXTRACTED_BYTES = 256 * 1024 * 1024
TIMEOUT_SECONDS = 60.0


class CheckoutError(Retryable):
    """The manifests of the commit could not be fetched (a fault: try the sync again)."""


def local_root(folder: str, subdir: str) -> Path:
    """A local checkout: either the repository root (holding ``subdir``) or ``subdir`` itself."""
    base = Path(folder)
    for candidate in (base / subdir.strip("/"), base):
        if (candidate / "manifests").is_dir():
            return candidate
    raise CheckoutError(f"{folder} holds no manifests/ folder (nor {subdir}/manifests/)")


def trusted_url(url: str) -> bool:
    """Whether ``url`` may be fetched for the sync: https, or plain http to loopback (tests, local runs)."""
    scheme = url.split("://", 1)[0]
    host = url.split("://", 1)[-1].split("/", 1)[0]
    return scheme == "https" or (scheme == "http" and is_loopback(host))


def download(url: str, subdir: str, into: Path) -> Path:
    """Fetch and unpack the tarball at ``url``; returns the folder holding images/ and manifests/."""
    if not trusted_url(url):
        raise CheckoutError(f"refusing {url}: manifests are fetched over https (http only on loopback)")
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "manifests.tar.gz"
    # requests loads with the first download, not with every importer of trusted_url (the CLI's stats).
    import requests

    try:
        with requests.get(url, stream=True, timeout=TIMEOUT_SECONDS) as response:
            if response.status_code != 200:
                raise CheckoutError(f"GET {url} answered {response.status_code}")
            received = 0
            with archive.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise CheckoutError(f"{url} is larger than {MAX_DOWNLOAD_BYTES} bytes")
                    out.write(chunk)
    except requests.RequestException as error:
        raise CheckoutError(f"GET {url} failed: {error}") from None
    return _extract(archive, subdir, into / "tree", url)


def _extract(archive: Path, subdir: str, target: Path, url: str) -> Path:
    wanted = folder_prefixes(subdir)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members, total, tops = [], 0, set()
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if ".." in parts or member.name.startswith("/"):
                    raise CheckoutError(f"{url} holds an unsafe path {member.name!r}; nothing was unpacked")
                # GitHub tarballs hold one top folder, "<repo>-<sha>/"; paths are taken below it.
                inner = "/".join(parts[1:])
                if member.isfile() and inner.startswith(wanted):
                    total += member.size
                    if total > MAX_EXTRACTED_BYTES:
                        raise CheckoutError(f"{url} unpacks to more than {MAX_EXTRACTED_BYTES} bytes of manifests")
                    members.append(member)
                    tops.add(parts[0])
            if len(tops) != 1:
                raise CheckoutError(f"{url} holds no single <repo>-<sha>/{subdir}/ folder of images and manifests")
            tar.extractall(target, members=members, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise CheckoutError(f"{url} is not a readable tarball: {error}") from None
    return target / tops.pop() / subdir.strip("/")


def temporary_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="auditor-manifests-")
