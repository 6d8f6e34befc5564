"""Writing manifest trees in k8s.io's thin layout, and finding the real snapshot."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

SNAPSHOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "k8s.io" / "registry.k8s.io"


def snapshot() -> Path:
    """The real k8s.io manifests; skips the test where the snapshot is not laid out beside the project."""
    if not (SNAPSHOT / "manifests").is_dir():
        pytest.skip(f"the k8s.io snapshot is not at {SNAPSHOT}")
    return SNAPSHOT


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def write_project(
    root: Path,
    project: str,
    *,
    destinations: list[str],
    images: list[dict[str, Any]] | None,
    staging: str | None = None,
) -> None:
    """One project: its promoter manifest and its images file (``images=None`` writes an empty file)."""
    manifest_dir = root / "manifests" / project
    images_dir = root / "images" / project
    manifest_dir.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    registries: list[dict[str, Any]] = [{"name": staging or f"gcr.io/{project}", "src": True}]
    registries += [{"name": d, "service-account": "promoter@example.iam.gserviceaccount.com"} for d in destinations]
    (manifest_dir / "promoter-manifest.yaml").write_text(yaml.safe_dump({"registries": registries}))
    (images_dir / "images.yaml").write_text("" if images is None else yaml.safe_dump(images))
