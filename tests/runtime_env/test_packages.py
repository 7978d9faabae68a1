"""Packages of a runtime env: packing a directory (excludes, .gitignore, the size limit, the same
URI for the same files), storing it in a real etcd in chunks, and extracting it once; a
collection cancelled by a use announced since the collector looked, and a node's pruning of
the extracted packages it no longer needs."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from actorcore.runtime_env import package_store
from actorcore.runtime_env.package_cache import PackageCache, extract, prune_extracted
from actorcore.runtime_env.package_store import PackageMissingError, PackageStore
from actorcore.runtime_env.packaging import PackageError, pack, pack_directory, sha_of_uri

pytestmark = pytest.mark.timeout(60)


def _tree(root, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _names(data: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())


def test_a_directory_packs_to_the_same_uri_whatever_its_files_times(tmp_path):
    _tree(tmp_path / "a", {"mod.py": b"X = 1\n", "pkg/__init__.py": b"", "pkg/data.txt": b"d"})
    _tree(tmp_path / "b", {"pkg/data.txt": b"d", "pkg/__init__.py": b"", "mod.py": b"X = 1\n"})
    os.utime(tmp_path / "b" / "mod.py", (1, 1))
    uri, data = pack_directory(tmp_path / "a")
    assert pack_directory(tmp_path / "b")[0] == uri
    assert uri.startswith("pkg://") and len(sha_of_uri(uri)) == 64
    assert _names(data) == ["mod.py", "pkg/__init__.py", "pkg/data.txt"]
    assert pack_directory(tmp_path / "a", ["pkg/data.txt"])[0] != uri


def test_excludes_gitignore_and_git_are_left_out(tmp_path):
    _tree(tmp_path, {".gitignore": b"*.log\nbuild/\n", "keep.py": b"", "run.log": b"x", "build/out.o": b"x",
                     ".git/HEAD": b"ref", "data/big.bin": b"x", "data/small.txt": b"x"})
    _, data = pack_directory(tmp_path, ["data/*.bin"])
    assert _names(data) == [".gitignore", "data/small.txt", "keep.py"]


def test_bad_directories_and_oversized_ones_are_refused_with_the_reason(tmp_path):
    with pytest.raises(PackageError, match=r"working_dir '.*missing' does not exist"):
        pack(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(PackageError, match=r"neither a directory nor a \.zip or \.whl file"):
        pack(tmp_path / "notes.txt", what="py_modules")
    _tree(tmp_path / "big", {"blob.bin": os.urandom(3 * 1024 * 1024)})
    with pytest.raises(PackageError, match=r"is 3\.0 MiB packed, over the 2 MiB a package may be: .*excludes"):
        pack(tmp_path / "big", max_bytes=2 * 1024 * 1024)
    with pytest.raises(PackageError, match="list of gitignore patterns"):
        pack_directory(tmp_path, "*.log")


def test_a_zip_file_is_its_own_package(tmp_path):
    _tree(tmp_path / "src", {"m.py": b"Y = 2\n"})
    uri, data = pack_directory(tmp_path / "src")
    (tmp_path / "src.zip").write_bytes(data)
    assert pack(tmp_path / "src.zip") == (uri, data)


async def test_a_package_is_stored_in_chunks_and_read_back_once_per_node(sealed_etcd, tmp_path, monkeypatch):
    monkeypatch.setattr(package_store, "CHUNK_BYTES", 1000)
    _tree(tmp_path / "src", {"m.py": b"Y = 2\n", "blob.bin": os.urandom(5000)})
    uri, data = pack_directory(tmp_path / "src")
    store = PackageStore(sealed_etcd, "c1")
    assert not await store.exists(uri)
    assert await store.put(uri, data) is True
    assert await store.put(uri, data) is False  # content-addressed: stored once
    assert await store.get(uri) == data
    assert len(await sealed_etcd.get_prefix(f"/actorcore/c1/packages/{sha_of_uri(uri)}/")) > 5
    cache = PackageCache(tmp_path / "cache", store)
    where = await cache.ensure(uri)
    assert (where / "m.py").read_text() == "Y = 2\n" and where == cache.path_of(uri)
    await store.delete(uri)
    assert await cache.ensure(uri) == where  # extracted already: no fetch
    with pytest.raises(PackageMissingError, match="holds no package"):
        await store.get(uri)
    with pytest.raises(ValueError, match="do not hash to it"):
        await store.put(uri, data + b"x")


def test_a_zip_entry_outside_its_directory_is_refused(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.py", "x")
    with pytest.raises(ValueError, match="would land outside its directory"):
        extract(buffer.getvalue(), tmp_path / "cache" / "pkg")
    assert not (tmp_path / "cache" / "escape.py").exists() and not (tmp_path / "cache" / "pkg").exists()
    assert os.listdir(tmp_path / "cache") == []


async def test_a_collection_fails_if_a_use_was_announced_since_the_collector_looked(sealed_etcd, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setattr(package_store, "CHUNK_BYTES", 1000)
    _tree(tmp_path / "src", {"blob.bin": os.urandom(3000)})
    uri, data = pack_directory(tmp_path / "src")
    sha = sha_of_uri(uri)
    store = PackageStore(sealed_etcd, "c2")
    await store.put(uri, data)
    assert await store.shas() == {sha}
    _, looked = await sealed_etcd.get_prefix_with_revision("/actorcore/c2/package_used/")
    await store.touch(uri)  # a process announced a use after the collector looked
    assert not await store.collect(sha, looked)
    assert await store.get(uri) == data
    _, looked = await sealed_etcd.get_prefix_with_revision("/actorcore/c2/package_used/")
    assert await store.collect(sha, looked)
    assert await sealed_etcd.get_prefix("/actorcore/c2/") == []  # meta, chunks and last use: all gone
    assert await store.shas() == set()


def test_extracted_packages_are_pruned_but_for_those_kept(tmp_path):
    for name in ("a" * 64, "b" * 64):
        (tmp_path / name).mkdir()
        (tmp_path / name / "m.py").write_text("x = 1\n")
    (tmp_path / ".staging").mkdir()
    assert prune_extracted(tmp_path, {"a" * 64}) == ["b" * 64]
    assert sorted(os.listdir(tmp_path)) == [".staging", "a" * 64]
