"""Shared fixtures: syrupy extensions that store a golden as one readable file per snapshot (text
or JSON), not as a repr inside an .ambr file."""
from __future__ import annotations

import pytest
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode


class TextSnapshot(SingleFileSnapshotExtension):
    _file_extension = "txt"
    _write_mode = WriteMode.TEXT


class JsonSnapshot(SingleFileSnapshotExtension):
    _file_extension = "json"
    _write_mode = WriteMode.TEXT


@pytest.fixture
def text_snapshot(snapshot):
    return snapshot.use_extension(TextSnapshot)


@pytest.fixture
def json_snapshot(snapshot):
    return snapshot.use_extension(JsonSnapshot)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache folder of the test's own (PLAYDECK_CACHE), for what the test reads back from it."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("PLAYDECK_CACHE", str(folder))
    return folder


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory):
    """One cache folder for the whole run, never the user's: a backtest remembers its --data file
    there, and a test must neither leave files in ~/.cache nor find ones a past run left."""
    import os

    before = os.environ.get("PLAYDECK_CACHE")
    os.environ["PLAYDECK_CACHE"] = str(tmp_path_factory.mktemp("playdeck-cache"))
    yield
    if before is None:
        os.environ.pop("PLAYDECK_CACHE", None)
    else:
        os.environ["PLAYDECK_CACHE"] = before
