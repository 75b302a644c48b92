"""Archive extraction refuses hostile archives (path traversal, absolute paths, links out,
oversize) and leaves nothing behind; well-formed MMAR archives extract with their internal
links. Real zip and tar files, built here, through the launcher's extract_archive."""

import io
import os
import random
import re
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import List, Tuple

import pytest

import clara_launcher as launcher

Member = Tuple[str, str, str]  # (kind, name, content or link target)


def make_tar(path: Path, members: List[Member]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for kind, name, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = value.encode()
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, value
                tf.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, value
                tf.addfile(info)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
                tf.addfile(info)
    return path


def make_zip(path: Path, members: List[Member]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for kind, name, value in members:
            if kind == "symlink":
                info = zipfile.ZipInfo(name)
                info.external_attr = 0o120777 << 16
                zf.writestr(info, value)
            else:
                zf.writestr(name, value)
    return path


HOSTILE = [
    ("traversal", [("file", "../evil.txt", "x")], "leaves the target directory ('..')"),
    ("nested traversal", [("file", "config/../../evil.txt", "x")], "leaves the target directory"),
    ("absolute path", [("file", "/tmp/evil.txt", "x")], "has an absolute path"),
    ("symlink to an absolute path", [("symlink", "config", "/etc")], "link to an absolute path"),
    ("symlink out", [("symlink", "data", "../../outside")], "link that leaves the target"),
    (
        "write through a link",
        [("symlink", "inner", "config"), ("dir", "config", ""), ("file", "inner/x.json", "{}")],
        "goes through a link",
    ),
    (
        "link chain out",
        # Each link alone stays inside; through l (the root), m's '..' leaves it.
        [("dir", "a", ""), ("symlink", "m", "l/../outside"), ("symlink", "l", "a/..")],
        "'m' is a link that leaves",
    ),
]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_archives_are_refused_and_leave_nothing(fmt, case, tmp_path: Path):
    _, members, message = case
    if fmt == "zip" and any(kind == "dir" for kind, _, _ in members):
        members = [(k, n + "/" if k == "dir" else n, v) for k, n, v in members]
    build = make_tar if fmt == "tar" else make_zip
    archive = build(tmp_path / f"mmar.{fmt}", members)
    target = tmp_path / "out" / "mmar"

    with pytest.raises(launcher.LauncherError, match=re.escape(message)):
        launcher.extract_archive(str(archive), str(target))
    assert not target.exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


@pytest.mark.parametrize(
    "members, message",
    [
        ([("hardlink", "copy", "/etc/passwd")], "hard link to a file outside the archive"),
        ([("hardlink", "copy", "../x")], "leaves the target directory|hard link to a file outside"),
        ([("fifo", "pipe", "")], "not a file, directory or link"),
    ],
    ids=["hard link out", "hard link up", "fifo"],
)
def test_tar_hard_links_out_and_special_files_are_refused(members, message, tmp_path: Path):
    archive = make_tar(tmp_path / "mmar.tar.gz", members)
    with pytest.raises(launcher.LauncherError, match=message):
        launcher.extract_archive(str(archive), str(tmp_path / "mmar"))
    assert not (tmp_path / "mmar").exists()


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_archives_over_the_size_limit_are_refused(fmt, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(launcher, "MAX_EXTRACTED_BYTES", 1000)
    members = [("file", "models/a.pt", "x" * 600), ("file", "models/b.pt", "y" * 600)]
    archive = (make_tar if fmt == "tar" else make_zip)(tmp_path / f"big.{fmt}", members)
    with pytest.raises(
        launcher.LauncherError, match="over the limit of 1000 bytes|more than 1000 bytes"
    ):
        launcher.extract_archive(str(archive), str(tmp_path / "mmar"))
    assert not (tmp_path / "mmar").exists()


def test_a_tar_of_hard_links_is_held_to_the_limit_by_the_bytes_written(tmp_path: Path, monkeypatch):
    # Each hard link declares size 0 and is written as a copy of a.pt, so only the bytes
    # streamed out can stop it (the declared sizes add up to 600).
    monkeypatch.setattr(launcher, "MAX_EXTRACTED_BYTES", 1000)
    links = [("hardlink", f"models/copy{i}.pt", "models/a.pt") for i in range(5)]
    archive = make_tar(tmp_path / "links.tar.gz", [("file", "models/a.pt", "x" * 600), *links])
    assert sum(m.size for m in tarfile.open(archive)) == 600

    with pytest.raises(launcher.LauncherError, match="extracts to more than 1000 bytes"):
        launcher.extract_archive(str(archive), str(tmp_path / "mmar"))
    assert not (tmp_path / "mmar").exists()


def understate_zip_sizes(archive: Path, declared: int) -> None:
    """Writes `declared` as every member's uncompressed size, in the local headers and in the
    central directory (the one zipfile reads), leaving the compressed data as it is."""
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = data.find(signature)
        while start != -1:
            data[start + offset : start + offset + 4] = struct.pack("<I", declared)
            start = data.find(signature, start + 4)
    archive.write_bytes(bytes(data))


def test_a_zip_whose_headers_understate_its_size_is_cut_there_and_refused(
    tmp_path: Path, monkeypatch
):
    # 60 kB of x deflates to a few hundred bytes; the headers claim 10. zipfile stops the
    # stream at the declared size, so at most 10 bytes are written, and the CRC of the cut
    # stream fails: a damaged archive (exit 2), nothing left behind.
    monkeypatch.setattr(launcher, "MAX_EXTRACTED_BYTES", 1000)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("models/a.pt", "x" * 60_000)
    understate_zip_sizes(archive, 10)
    assert archive.stat().st_size < 1000

    with pytest.raises(launcher.LauncherError) as refused:
        launcher.extract_archive(str(archive), str(tmp_path / "mmar"))
    assert str(refused.value) == "archive bomb.zip is damaged: Bad CRC-32 for file 'models/a.pt'"
    assert refused.value.exit_code == launcher.EXIT_PERMANENT
    assert not (tmp_path / "mmar").exists()


def test_a_truncated_tar_is_refused_as_damaged(tmp_path: Path):
    payload = random.Random(0).randbytes(200_000)  # incompressible, so the cut is mid-member
    whole = tmp_path / "whole.tar.gz"
    with tarfile.open(whole, "w:gz") as tf:
        info = tarfile.TarInfo("models/model.pt")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    with pytest.raises(
        launcher.LauncherError, match=r"^archive cut.tar.gz is damaged: "
    ) as refused:
        launcher.extract_archive(str(cut), str(tmp_path / "mmar"))
    assert refused.value.exit_code == launcher.EXIT_PERMANENT
    assert not (tmp_path / "mmar").exists()


CLASHES = [
    (
        "file then folder",
        [("file", "config", "x"), ("dir", "config", "")],
        "is a folder, but an earlier member of that name is a file",
    ),
    (
        "folder then file",
        [("dir", "config", ""), ("file", "config", "x")],
        "is a file, but an earlier member of that name is a folder",
    ),
    (
        "file inside a file",
        [("file", "config", "x"), ("file", "config/train.json", "{}")],
        "is inside 'config', which an earlier member made a file",
    ),
]


@pytest.mark.parametrize("fmt", ["tar", "zip"])
@pytest.mark.parametrize("case", CLASHES, ids=[c[0] for c in CLASHES])
def test_a_file_and_a_folder_of_one_name_are_refused_naming_the_member(fmt, case, tmp_path: Path):
    _, members, message = case
    if fmt == "zip":
        members = [(k, n + "/" if k == "dir" else n, v) for k, n, v in members]
    archive = (make_tar if fmt == "tar" else make_zip)(tmp_path / f"clash.{fmt}", members)
    culprit = members[-1][1]

    with pytest.raises(launcher.LauncherError) as refused:
        launcher.extract_archive(str(archive), str(tmp_path / "mmar"))
    assert str(refused.value) == f"archive clash.{fmt}: member {culprit!r} {message}"
    assert refused.value.exit_code == launcher.EXIT_PERMANENT
    assert not (tmp_path / "mmar").exists()


def test_too_many_members_are_refused(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(launcher, "MAX_MEMBERS", 3)
    archive = make_zip(tmp_path / "many.zip", [("file", f"f{i}", "x") for i in range(4)])
    with pytest.raises(launcher.LauncherError, match="more than 3 members"):
        launcher.extract_archive(str(archive), str(tmp_path / "mmar"))


def test_not_an_archive_is_named(tmp_path: Path):
    junk = tmp_path / "mmar.zip"
    junk.write_text("<html>login page</html>")
    with pytest.raises(launcher.LauncherError, match="mmar.zip: not a zip or tar archive"):
        launcher.extract_archive(str(junk), str(tmp_path / "mmar"))


@pytest.mark.parametrize("fmt", ["tar", "zip"])
def test_a_well_formed_mmar_extracts_with_its_internal_links(fmt, tmp_path: Path):
    members = [
        ("file", "clara_pt_spleen/config/config_train.json", '{"model": {"name": "UNet"}}'),
        ("file", "clara_pt_spleen/config/environment.json", "{}"),
        ("symlink", "clara_pt_spleen/config/latest.json", "config_train.json"),
        ("file", "clara_pt_spleen/models/model.pt", "weights"),
    ]
    archive = (make_tar if fmt == "tar" else make_zip)(tmp_path / f"ok.{fmt}", members)
    target = launcher.extract_archive(str(archive), str(tmp_path / "mmar"))

    root = launcher.find_root(target, "config")
    assert root == str(tmp_path / "mmar" / "clara_pt_spleen")
    assert (Path(root) / "config" / "latest.json").read_text() == '{"model": {"name": "UNet"}}'
    assert os.path.islink(Path(root) / "config" / "latest.json")
    assert (Path(root) / "models" / "model.pt").read_text() == "weights"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: os.mkfifo(d / "pipe"), "'pipe' is not a file, directory or link"),
        (lambda d: (d / "big.pt").write_bytes(b"x" * 2000), "bytes is over the limit of 1000"),
        (lambda d: (d / "out").symlink_to("/etc/passwd"), "'out' is a link that leaves"),
    ],
    ids=["fifo", "over the size limit", "link out"],
)
def test_a_folder_written_by_others_is_checked_before_it_is_copied(
    make, message, tmp_path: Path, monkeypatch
):
    # The dataset copy and the bundle `monai.bundle download` unpacked go through check_tree.
    monkeypatch.setattr(launcher, "MAX_EXTRACTED_BYTES", 1000)
    source = tmp_path / "source"
    (source / "configs").mkdir(parents=True)
    (source / "configs" / "train.json").write_text("{}")
    make(source)
    with pytest.raises(launcher.LauncherError, match=f"^dataset d1: .*{re.escape(message)}"):
        launcher.copy_tree_checked(str(source), str(tmp_path / "copy"), what="dataset d1")
    assert not (tmp_path / "copy").exists()
