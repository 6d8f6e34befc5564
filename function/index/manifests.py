"""Promotion manifests in k8s.io's thin layout.

``manifests/<project>/promoter-manifest.yaml`` names the staging registry (``src: true``) and the
destinations; ``images/<project>/images.yaml`` lists images and their ``dmap`` of digest -> tags.
Real manifests carry oddities (names repeated a hundred times, null dmaps, empty files, the odd
malformed digest): a bad entry is reported as a ``Problem`` and skipped, the rest is kept. A file that
cannot be read at all is a fatal problem, because dropping a whole project would turn every one of its
promotions into a false alarm.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from function.reference import InvalidReference, is_digest, is_tag, normalize_host, split_path

# libyaml's loader is an order of magnitude faster on the 2 MB of real manifests.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

PROMOTER_MANIFEST = "promoter-manifest.yaml"
IMAGES_FILE = "images.yaml"
FOLDERS = ("images", "manifests")


def folder_prefixes(subdir: str) -> tuple[str, ...]:
    """Path prefixes, inside a k8s.io checkout, of the files this layout reads; ``subdir`` may be empty."""
    base = subdir.strip("/")
    return tuple(f"{base}/{folder}/" if base else f"{folder}/" for folder in FOLDERS)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    message: str
    image: str | None = None
    fatal: bool = False

    def __str__(self) -> str:
        where = f"{self.file} (image {self.image})" if self.image else self.file
        return f"{where}: {self.message}"


@dataclass(slots=True)
class Project:
    name: str
    staging: str | None
    destinations: tuple[str, ...]
    # image name -> digest -> tags
    images: dict[str, dict[str, set[str]]] = field(default_factory=dict)


@dataclass(slots=True)
class ManifestSet:
    projects: dict[str, Project]
    problems: list[Problem]

    @property
    def fatal(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.fatal]


def load(root: str | os.PathLike[str]) -> ManifestSet:
    """Read every project under ``root`` (the folder holding ``images/`` and ``manifests/``)."""
    base = Path(root)
    problems: list[Problem] = []
    if not (base / "manifests").is_dir():
        problems.append(Problem(str(base), "no manifests/ folder: is this the registry.k8s.io folder?", fatal=True))
        return ManifestSet({}, problems)
    manifest_projects = _project_dirs(base / "manifests", PROMOTER_MANIFEST)
    image_projects = _project_dirs(base / "images", IMAGES_FILE)
    projects: dict[str, Project] = {}
    for name in sorted(manifest_projects | image_projects):
        manifest_file = base / "manifests" / name / PROMOTER_MANIFEST
        images_file = base / "images" / name / IMAGES_FILE
        if name not in image_projects:
            problems.append(Problem(_rel(manifest_file, base), f"project {name} has no {IMAGES_FILE}"))
            continue
        if name not in manifest_projects:
            problems.append(Problem(_rel(images_file, base), f"project {name} has no {PROMOTER_MANIFEST}"))
            continue
        registries = _read_registries(manifest_file, base, problems)
        if registries is None:
            continue
        staging, destinations = registries
        project = Project(name, staging, destinations)
        _read_images(images_file, base, project, problems)
        projects[name] = project
    return ManifestSet(projects, problems)


def _project_dirs(folder: Path, filename: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {entry.name for entry in folder.iterdir() if (entry / filename).is_file()}


def _rel(path: Path, base: Path) -> str:
    return str(path.relative_to(base))


def _read_yaml(path: Path, base: Path, problems: list[Problem]) -> tuple[bool, Any]:
    try:
        with path.open("rb") as stream:
            return True, yaml.load(stream, Loader=_Loader)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as error:
        problems.append(Problem(_rel(path, base), f"cannot be read: {error}", fatal=True))
        return False, None


def _read_registries(path: Path, base: Path, problems: list[Problem]) -> tuple[str | None, tuple[str, ...]] | None:
    ok, document = _read_yaml(path, base, problems)
    if not ok:
        return None
    file = _rel(path, base)
    registries = document.get("registries") if isinstance(document, Mapping) else None
    if not isinstance(registries, list):
        problems.append(Problem(file, "has no 'registries' list", fatal=True))
        return None
    staging: str | None = None
    destinations: list[str] = []
    for entry in registries:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not _valid_registry(name):
            problems.append(Problem(file, f"registry entry {entry!r} has no valid 'name'"))
            continue
        name = _normalized_registry(name)
        if entry.get("src") is True:
            staging = name
        elif name not in destinations:
            destinations.append(name)
    if not destinations:
        problems.append(Problem(file, "names no destination registry"))
    return staging, tuple(destinations)


def _normalized_registry(name: str) -> str:
    host, _, rest = name.rstrip("/").partition("/")
    return f"{normalize_host(host)}/{rest}" if rest else normalize_host(host)


def _valid_registry(name: str) -> bool:
    stripped = name.rstrip("/")
    try:
        split_path(stripped if "/" in stripped else f"{stripped}/x")
    except InvalidReference:
        return False
    return True


def _read_images(path: Path, base: Path, project: Project, problems: list[Problem]) -> None:
    ok, document = _read_yaml(path, base, problems)
    file = _rel(path, base)
    if not ok:
        return
    if document is None:
        return  # an empty images.yaml: a project that has promoted nothing yet
    if not isinstance(document, list):
        problems.append(Problem(file, "is not a list of images", fatal=True))
        return
    for entry in document:
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not _valid_image_name(name):
            problems.append(Problem(file, f"entry {_short(entry)} has no valid image 'name'"))
            continue
        dmap = entry.get("dmap")
        if dmap is None:
            project.images.setdefault(name, {})
            continue
        if not isinstance(dmap, Mapping):
            problems.append(Problem(file, "dmap is not a mapping", image=name))
            continue
        # Repeated names in one file are one image: their dmaps merge.
        _merge_dmap(project.images.setdefault(name, {}), dmap.items(), file, name, problems)


def _merge_dmap(
    target: dict[str, set[str]],
    items: Iterable[tuple[Any, Any]],
    file: str,
    image: str,
    problems: list[Problem],
) -> None:
    for digest, tags in items:
        if not isinstance(digest, str) or not is_digest(digest):
            problems.append(Problem(file, f"malformed digest {_short(digest)} skipped", image=image))
            continue
        if tags is None:
            tags = []
        elif isinstance(tags, str):
            tags = [tags]
        if not isinstance(tags, list):
            problems.append(Problem(file, f"tags of {digest} are not a list; kept untagged", image=image))
            tags = []
        good = target.setdefault(digest, set())
        for tag in tags:
            if isinstance(tag, str) and is_tag(tag):
                good.add(tag)
            else:
                problems.append(Problem(file, f"malformed tag {_short(tag)} of {digest} skipped", image=image))


def _valid_image_name(name: str) -> bool:
    try:
        split_path(f"example.com/{name}")
    except InvalidReference:
        return False
    return True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
