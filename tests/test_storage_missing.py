"""A missing bucket or folder is told apart from a missing index: the first needs fixing, the second a sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.storage.errors import StoreError, StoreMissing
from function.storage.local import LocalStore
from function.storage.uri import open_store
from tests.support.gcs import GcsEmulator

INDEX = b'{"schema": 1}'


def test_a_missing_local_folder_is_permanent_a_missing_file_is_not_there_yet(tmp_path: Path) -> None:
    absent = LocalStore(tmp_path / "index.json")
    assert absent.read() is None and absent.generation() is None
    nowhere = LocalStore(tmp_path / "no-folder" / "index.json")
    for operation in (nowhere.read, nowhere.generation, lambda: nowhere.write(INDEX, if_generation=None)):
        with pytest.raises(StoreMissing, match=r"folder '.*no-folder' does not exist; fix the index path"):
            operation()


@pytest.mark.emulators
def test_a_missing_bucket_is_permanent_a_missing_object_is_not_there_yet(gcs: GcsEmulator, gcs_env: str) -> None:
    absent = open_store(f"gs://{gcs_env}/index.json.gz")
    assert absent.read() is None and absent.generation() is None
    nowhere = open_store(f"gs://{gcs_env}-gone/index.json.gz")
    operations = (
        nowhere.read,
        nowhere.generation,
        lambda: nowhere.write(INDEX, if_generation=None),
        lambda: nowhere.records("pending").create("c0ffee.json", b"{}"),
    )
    for operation in operations:
        with pytest.raises(StoreMissing, match=f"bucket '{gcs_env}-gone' does not exist; fix the bucket") as caught:
            operation()
        # Still a StoreError: the audit function leaves events open (RETRY) until the bucket is there.
        assert isinstance(caught.value, StoreError)
    gcs.create_bucket(f"{gcs_env}-gone")
    assert nowhere.read() is None
