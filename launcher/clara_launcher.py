"""clara-operator's training launcher: the program a ClaraInstance's ClearML task runs.

The operator stores this one file in the task (`script.diff`, entry point `clara_launcher.py`) and
clearml-agent runs it inside the training image, so it depends on the standard library and the
`clearml` SDK only, and keeps to Python 3.8 syntax (the Clara Train 4.x images' Python).

What it does, in order:

1. reads its arguments from the task's `Args` hyperparameters (written by the operator's
   `src/controller/clarainstance/launch.ts`);
2. fetches the dataset task's files with the SDK; their local copy is `DATA_ROOT`;
3. obtains the MMAR or bundle (a path in the image, NGC, an https archive, a ClearML artifact or
   dataset, or a MONAI Model Zoo bundle), extracting archives without letting any member leave
   the target directory;
4. picks the config file (from the training arch by a table, or as given), writes a copy of the
   environment file with `DATA_ROOT`, `DATASET_JSON` and the `set` entries that name its keys;
5. runs `medl.apps.train` (Clara Train) or `monai.bundle run` (MONAI bundle) as a child process,
   forwarding its console to the task log and reporting the TensorBoard scalars it writes under
   the names the operator reads (`val_mean_dice`, `val_acc`, `train_loss`, `train_acc`);
6. registers every model file the run wrote (`*.pt`, `*.ts`) as a ClearML output model.

Any failure exits non-zero and prints the reason as the launcher's last line: exit 2 for input
that cannot work (fix the ClaraInstance), 3 for a failure worth retrying (network, storage),
4 when the trainer itself failed. Secrets (the NGC API key, ClearML keys) are read from the
environment and never printed, put on a command line or passed to the trainer; no user string
reaches a shell.

Reference: `../shared/reference/clara-mmar.md` (MMAR layout, train commands, metric and model file
names, bundle equivalents).
"""

import gzip
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

ARGS_SECTION = "Args"
RUNTIMES = ("ClaraTrain", "MonaiBundle")
MMAR_KINDS = ("path", "ngc", "url", "artifact", "dataset", "bundle")

EXIT_PERMANENT = 2
EXIT_RETRIABLE = 3
EXIT_TRAINING = 4

# Limits for archives; the environment may lower or raise them (bytes, members).
# Settings that do not parse are reported by main() as the run's error (exit 2), not as a
# traceback at import.
SETTING_PROBLEMS: List[str] = []


def _limit(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        SETTING_PROBLEMS.append(f"{variable}: expected a whole number of at least 1, got {raw!r}")
        return default
    return int(raw)


MAX_ARCHIVE_BYTES = _limit("CLARA_LAUNCHER_MAX_ARCHIVE_BYTES", 20 << 30)
MAX_EXTRACTED_BYTES = _limit("CLARA_LAUNCHER_MAX_EXTRACTED_BYTES", 50 << 30)
MAX_MEMBERS = _limit("CLARA_LAUNCHER_MAX_MEMBERS", 200000)

NGC_API_URL = os.environ.get("CLARA_LAUNCHER_NGC_API_URL", "https://api.ngc.nvidia.com")
NGC_AUTHN_URL = os.environ.get("CLARA_LAUNCHER_NGC_AUTHN_URL", "https://authn.nvidia.com")
NGC_KEY_VARIABLES = ("NGC_API_KEY", "NGC_CLI_API_KEY")
# Credentials the launcher (or the SDK in it) uses and the trainer does not: it reports nothing
# to ClearML itself. Kept out of the trainer's environment.
SECRET_VARIABLES = NGC_KEY_VARIABLES + (
    "CLEARML_API_ACCESS_KEY",
    "CLEARML_API_SECRET_KEY",
    "CLEARML_AUTH_TOKEN",
    "TRAINS_API_ACCESS_KEY",
    "TRAINS_API_SECRET_KEY",
)

SET_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(#[A-Za-z0-9_]+)*$")
CLEARML_ID = re.compile(r"^[0-9a-f]{32}$")
NGC_REF = re.compile(
    r"^(?:([a-z0-9][a-z0-9_-]*)/)?(?:([a-z0-9][a-z0-9_-]*)/)?([a-z0-9][a-z0-9_.-]*)"
    r":([A-Za-z0-9][A-Za-z0-9_.-]*)$"
)
BUNDLE_REF = re.compile(r"^([A-Za-z0-9_]+)(?::([A-Za-z0-9][A-Za-z0-9_.+-]*))?$")

# The scalars the operator reads, and the names MONAI bundles give two of them
# (`clara-mmar.md` §5 and §6 "Metric aliases").
OPERATOR_SCALARS = ("val_mean_dice", "val_acc", "train_loss", "train_acc")
SCALAR_ALIASES = {"val_accuracy": "val_acc", "train_accuracy": "train_acc"}

MODEL_SUFFIXES = (".pt", ".ts")


class LauncherError(Exception):
    """A failure the launcher explains; `exit_code` says whether a retry can help."""

    exit_code = EXIT_PERMANENT


class RetriableError(LauncherError):
    """A failure of the network or of a service; the same task may succeed later."""

    exit_code = EXIT_RETRIABLE


class TrainingError(LauncherError):
    """The trainer process failed."""

    exit_code = EXIT_TRAINING


def say(message: str) -> None:
    """One line to the console, which the agent (or the SDK) sends to the task log. URLs in it
    lose their query and user info (see `redact_urls`)."""
    sys.stdout.write(f"clara-launcher: {redact_urls(message)}\n")
    sys.stdout.flush()


# --- arguments ------------------------------------------------------------------------------


class LaunchArgs:
    """The launcher's arguments, checked. `set` keeps the user's order."""

    def __init__(
        self,
        *,
        runtime: str,
        dataset_task: str,
        mmar_kind: str,
        mmar_value: str,
        training_arch: str,
        config_file: str,
        environment_file: str,
        overrides: List[Tuple[str, str]],
        gpus: int,
    ) -> None:
        self.runtime = runtime
        self.dataset_task = dataset_task
        self.mmar_kind = mmar_kind
        self.mmar_value = mmar_value
        self.training_arch = training_arch
        self.config_file = config_file
        self.environment_file = environment_file
        self.overrides = overrides
        self.gpus = gpus


def parse_set_list(text: str) -> List[Tuple[str, str]]:
    """Reads the `set` argument: a YAML flow list of single-quoted `'K=V'` items (`''` is a
    quote), as the operator writes it; '' and `[]` mean none. Raises LauncherError naming the
    problem otherwise."""
    text = text.strip()
    if text in ("", "[]"):
        return []
    if not (text.startswith("[") and text.endswith("]")):
        raise LauncherError(f"argument set: expected a list like ['KEY=VALUE', ...], got {text!r}")
    items: List[str] = []
    i, body = 0, text[1:-1]
    while True:
        while i < len(body) and body[i] == " ":
            i += 1
        if i >= len(body) or body[i] != "'":
            raise LauncherError(f"argument set: expected a single-quoted item at {body[i:]!r}")
        i += 1
        item = []
        while True:
            if i >= len(body):
                raise LauncherError("argument set: an item is missing its closing quote")
            if body[i] == "'":
                if body[i + 1 : i + 2] == "'":
                    item.append("'")
                    i += 2
                    continue
                i += 1
                break
            item.append(body[i])
            i += 1
        items.append("".join(item))
        while i < len(body) and body[i] == " ":
            i += 1
        if i == len(body):
            break
        if body[i] != ",":
            raise LauncherError(f"argument set: expected ',' between items at {body[i:]!r}")
        i += 1
    return [split_override(item) for item in items]


def split_override(item: str) -> Tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not SET_KEY.match(key):
        raise LauncherError(
            f"argument set: {item!r} is not KEY=VALUE with an identifier key "
            "(letters, digits, '_', '#' between nested ids)"
        )
    return key, value


def parse_args(params: Dict[str, str]) -> LaunchArgs:
    """Checks the task's `Args/...` hyperparameters and returns them as LaunchArgs."""

    def arg(name: str) -> str:
        return str(params.get(f"{ARGS_SECTION}/{name}", "") or "").strip()

    runtime = arg("runtime") or "ClaraTrain"
    if runtime not in RUNTIMES:
        raise LauncherError(
            f"argument runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}"
        )
    dataset_task = arg("dataset_task")
    if not CLEARML_ID.match(dataset_task):
        raise LauncherError(
            "argument dataset_task: expected a ClearML dataset id (32 hex digits), "
            f"got {dataset_task!r}"
        )
    kind, sep, value = arg("mmar").partition(":")
    if not sep or kind not in MMAR_KINDS or not value:
        raise LauncherError(
            f"argument mmar: expected <kind>:<value> with kind one of {', '.join(MMAR_KINDS)}, "
            f"got {redact_urls(arg('mmar'))!r}"
        )
    arch, config_file = arg("training_arch"), arg("config_file")
    if bool(arch) == bool(config_file):
        raise LauncherError("arguments training_arch and config_file: give exactly one of them")
    if arch and runtime != "ClaraTrain":
        raise LauncherError(
            "argument training_arch: only the ClaraTrain runtime picks a config by arch"
        )
    gpus_text = arg("gpus") or "1"
    if not gpus_text.isdigit():
        raise LauncherError(f"argument gpus: expected a whole number, got {gpus_text!r}")
    environment_file = arg("environment_file")
    if runtime == "ClaraTrain" and not environment_file:
        environment_file = "config/environment.json"
    return LaunchArgs(
        runtime=runtime,
        dataset_task=dataset_task,
        mmar_kind=kind,
        mmar_value=value,
        training_arch=arch,
        config_file=config_file,
        environment_file=environment_file,
        overrides=parse_set_list(arg("set")),
        gpus=int(gpus_text),
    )


def inside(root: str, relative: str, what: str) -> str:
    """`root/relative`, refusing absolute paths and any path that leaves `root`."""
    if not relative or os.path.isabs(relative) or relative.startswith("\\"):
        raise LauncherError(f"{what}: expected a path relative to {root}, got {relative!r}")
    joined = os.path.normpath(os.path.join(root, relative))
    if not is_within(root, joined):
        raise LauncherError(f"{what}: {relative!r} leaves {root}")
    return joined


def output_folder(root: str, value: str, *, what: str, tree: str) -> str:
    """`root/value` for a folder the trainer writes and the launcher reads back (TensorBoard
    files, models). The launcher looks for those under the MMAR or bundle only, so a folder
    elsewhere would train with no scalars and end with "no model": refused up front."""
    if value and not os.path.isabs(value) and not value.startswith(("\\", "~")):
        joined = os.path.normpath(os.path.join(root, value))
        if is_within(root, joined):
            return joined
    raise LauncherError(
        f"{what}: expected a folder inside the {tree} (a relative path such as models/run1), "
        f"got {value!r}; the launcher reads scalars and models from the {tree} only"
    )


def is_within(root: str, path: str) -> bool:
    root = os.path.normpath(root)
    path = os.path.normpath(path)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# --- downloads ------------------------------------------------------------------------------


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to https only (an NGC or S3 download redirects to a signed URL)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urllib.parse.urlsplit(newurl).scheme != "https":
            raise LauncherError(
                f"download of {public_url(req.full_url)}: redirected to a non-https URL"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def public_url(url: str) -> str:
    """The URL without query, fragment or user info, safe to print (signed URLs carry tokens)."""
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a bad port or IPv6 host: print none of it rather than guess
        return "(a URL that does not parse)"
    if port:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# A URL up to a space or quote, less the punctuation of the sentence around it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]*[^\s'\".,;:)\]]")


def redact_urls(text: str) -> str:
    """`text` with every URL in it shown by `public_url`: the launcher's own lines may quote a
    user's argument or an SDK error, and a presigned URL's query is a credential."""
    return _URL_IN_TEXT.sub(lambda m: public_url(m.group(0)), text)


def require_https(url: str, what: str) -> None:
    """Refuses a URL that is not https (checked before anything is sent to it)."""
    if urllib.parse.urlsplit(url).scheme != "https":
        raise LauncherError(f"{what}: only https URLs are allowed, got {public_url(url)}")


def download(url: str, dest: str, *, headers: Optional[Dict[str, str]] = None) -> str:
    """Downloads an https URL to `dest`, at most MAX_ARCHIVE_BYTES (the declared length and the
    bytes received are both checked). Headers given here are not sent on after a redirect.
    Raises RetriableError for network and 5xx failures; a refused download leaves no file."""
    require_https(url, "download")
    try:
        _download_to(url, dest, headers or {})
    except BaseException:
        if os.path.exists(dest):
            os.remove(dest)
        raise
    return dest


def _download_to(url: str, dest: str, headers: Dict[str, str]) -> None:
    request = urllib.request.Request(url)
    for name, value in headers.items():
        request.add_unredirected_header(name, value)
    opener = urllib.request.build_opener(_HttpsOnlyRedirects())
    try:
        with opener.open(request, timeout=60) as response, open(dest, "wb") as out:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > MAX_ARCHIVE_BYTES:
                raise LauncherError(
                    f"download of {public_url(url)}: {declared} bytes is over the limit of "
                    f"{MAX_ARCHIVE_BYTES} bytes"
                )
            total = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_ARCHIVE_BYTES:
                    raise LauncherError(
                        f"download of {public_url(url)}: over the limit of "
                        f"{MAX_ARCHIVE_BYTES} bytes"
                    )
                out.write(chunk)
    except urllib.error.HTTPError as err:
        cls = RetriableError if err.code >= 500 or err.code == 429 else LauncherError
        raise cls(f"download of {public_url(url)}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise RetriableError(f"download of {public_url(url)} failed: {reason}") from None
    except ValueError:  # http.client.InvalidURL; its message quotes the URL, query included
        raise LauncherError(f"download of {public_url(url)}: not a valid URL") from None


def ngc_download_url(ref: str) -> Tuple[str, str]:
    """The zip URL of an NGC model `[org/[team/]]name:version` and the org it belongs to; the
    default org/team is nvidia/med, where the Clara MMARs are (`clara-mmar.md` §2)."""
    match = NGC_REF.match(ref)
    if not match:
        raise LauncherError(f"argument mmar: {ref!r} is not an NGC model [org/[team/]]name:version")
    org, team, name, version = match.groups()
    if org is None:
        org, team = "nvidia", "med"
    path = f"/v2/models/{org}/{team}/{name}" if team else f"/v2/models/{org}/{name}"
    quoted = urllib.parse.quote(path + f"/versions/{version}/zip")
    return NGC_API_URL.rstrip("/") + quoted, org


def ngc_token(api_key: str, org: str) -> str:
    """Exchanges an NGC API key for a bearer token (`$oauthtoken` basic auth on authn). The
    key goes to NGC_AUTHN_URL only, and only over https."""
    import base64

    require_https(
        NGC_AUTHN_URL, "CLARA_LAUNCHER_NGC_AUTHN_URL (the NGC sign-in, which receives the API key)"
    )
    query = urllib.parse.urlencode({"service": "ngc", "scope": f"group/ngc:{org}"})
    request = urllib.request.Request(f"{NGC_AUTHN_URL.rstrip('/')}/token?{query}")
    basic = base64.b64encode(f"$oauthtoken:{api_key}".encode()).decode()
    request.add_unredirected_header("Authorization", f"Basic {basic}")
    request.add_header("Accept", "application/json")
    try:
        with urllib.request.build_opener(_HttpsOnlyRedirects()).open(request, timeout=60) as r:
            token = json.load(r).get("token")
    except urllib.error.HTTPError as err:
        cls = RetriableError if err.code >= 500 else LauncherError
        raise cls(f"NGC sign-in with the API key failed: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise RetriableError(f"NGC sign-in failed: {getattr(err, 'reason', err)}") from None
    if not isinstance(token, str) or not token:
        raise LauncherError("NGC sign-in with the API key returned no token")
    return token


# --- archives -------------------------------------------------------------------------------


def extract_archive(archive: str, target: str) -> str:
    """Extracts a zip or tar(.gz) archive into `target` (created, must not exist) and returns it.

    Refused, with nothing left behind: absolute member names, `..`, members that pass through a
    link, links (symbolic or hard) that point outside `target`, devices and FIFOs, a file and a
    folder of the same name, damaged archives, more than MAX_MEMBERS members or
    MAX_EXTRACTED_BYTES bytes. Only regular files, directories and links inside the tree are
    made; modes keep the owner's bits and drop setuid/setgid.
    """
    shown = os.path.basename(archive)
    os.makedirs(target)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, target)
        else:
            raise LauncherError(f"{shown}: not a zip or tar archive")
        _check_links(target)
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, zlib.error, EOFError) as err:
        shutil.rmtree(target, ignore_errors=True)
        raise LauncherError(f"archive {shown} is damaged: {err}") from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


class _Budget:
    def __init__(self, archive: str) -> None:
        self.archive = os.path.basename(archive)
        self.members = 0
        self.bytes = 0

    def member(self) -> None:
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise LauncherError(f"archive {self.archive}: more than {MAX_MEMBERS} members")

    def add(self, size: int) -> None:
        self.bytes += size
        if self.bytes > MAX_EXTRACTED_BYTES:
            raise LauncherError(
                f"archive {self.archive}: extracts to more than {MAX_EXTRACTED_BYTES} bytes"
            )


def _member_path(target: str, name: str, archive: str) -> str:
    """Where a member goes: refuses absolute names, `..`, paths through an existing link and
    paths through a file an earlier member made."""
    shown = f"archive {os.path.basename(archive)}: member {name!r}"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise LauncherError(f"{shown} has an absolute path")
    parts = [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]
    if ".." in parts:
        raise LauncherError(f"{shown} leaves the target directory ('..')")
    if not parts:
        return target
    current = target
    for i, part in enumerate(parts):
        current = os.path.join(current, part)
        if os.path.islink(current):
            raise LauncherError(f"{shown} goes through a link")
        if i < len(parts) - 1 and os.path.lexists(current) and not os.path.isdir(current):
            folder = "/".join(parts[: i + 1])
            raise LauncherError(
                f"{shown} is inside {folder!r}, which an earlier member made a file"
            )
    return current


def _make_folder(dest: str, shown: str) -> None:
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise LauncherError(f"{shown} is a folder, but an earlier member of that name is a file")
    os.makedirs(dest, exist_ok=True)


def _refuse_folder(dest: str, shown: str) -> None:
    """A file member may replace an earlier file (the later one wins, as tar does) but not a
    folder."""
    if os.path.isdir(dest):
        raise LauncherError(f"{shown} is a file, but an earlier member of that name is a folder")


def _write_stream(source: Any, dest: str, budget: _Budget, mode: int) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(dest, flags, 0o600), "wb") as out:
        while True:
            chunk = source.read(1 << 20)
            if not chunk:
                break
            budget.add(len(chunk))
            out.write(chunk)
    os.chmod(dest, (mode & 0o777 & ~0o022) | stat.S_IRUSR | stat.S_IWUSR)


def _make_symlink(target: str, dest: str, link: str, shown: str) -> None:
    if os.path.isabs(link) or link.startswith("\\"):
        raise LauncherError(f"{shown} is a link to an absolute path")
    if not is_within(target, os.path.join(os.path.dirname(dest), link)):
        raise LauncherError(f"{shown} is a link that leaves the target directory")
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.lexists(dest):
        raise LauncherError(f"{shown} replaces an existing entry with a link")
    os.symlink(link, dest)


def _extract_zip(archive: str, target: str) -> None:
    budget = _Budget(archive)
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        # zipfile stops each member at the size the central directory declares (a longer
        # stream fails its CRC check), so this total bounds the bytes written.
        declared = sum(i.file_size for i in infos)
        if declared > MAX_EXTRACTED_BYTES:
            raise LauncherError(
                f"archive {os.path.basename(archive)}: extracts to {declared} bytes, over the "
                f"limit of {MAX_EXTRACTED_BYTES} bytes"
            )
        for info in infos:
            budget.member()
            dest = _member_path(target, info.filename, archive)
            shown = f"archive {os.path.basename(archive)}: member {info.filename!r}"
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                link = zf.read(info).decode("utf-8", "replace")
                _make_symlink(target, dest, link, shown)
            elif info.is_dir():
                _make_folder(dest, shown)
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                raise LauncherError(f"{shown} is not a file, directory or link")
            else:
                _refuse_folder(dest, shown)
                with zf.open(info) as source:
                    _write_stream(source, dest, budget, mode or 0o644)


def _extract_tar(archive: str, target: str) -> None:
    budget = _Budget(archive)
    extracted: Dict[str, str] = {}
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            budget.member()
            dest = _member_path(target, member.name, archive)
            shown = f"archive {os.path.basename(archive)}: member {member.name!r}"
            if member.isdir():
                _make_folder(dest, shown)
            elif member.issym():
                _make_symlink(target, dest, member.linkname, shown)
            elif member.islnk():
                # A hard link names another member; copy that file instead of linking to it.
                # Its header declares no size, so only the bytes copied count against the limit.
                source = extracted.get(os.path.normpath(member.linkname))
                if source is None:
                    raise LauncherError(f"{shown} is a hard link to a file outside the archive")
                _refuse_folder(dest, shown)
                with open(source, "rb") as f:
                    _write_stream(f, dest, budget, member.mode)
            elif member.isreg():
                if member.size > MAX_EXTRACTED_BYTES - budget.bytes:
                    raise LauncherError(
                        f"archive {os.path.basename(archive)}: extracts to more than "
                        f"{MAX_EXTRACTED_BYTES} bytes"
                    )
                _refuse_folder(dest, shown)
                stream = tf.extractfile(member)
                if stream is None:
                    raise LauncherError(f"{shown} cannot be read")
                _write_stream(stream, dest, budget, member.mode)
                extracted[os.path.normpath(member.name)] = dest
            else:
                raise LauncherError(f"{shown} is not a file, directory or link")


def _check_links(root: str, *, what: str = "") -> None:
    """Every link under `root` resolves inside it, following chains (a link made earlier can
    change meaning once a later one exists, so each is checked once the tree is complete).
    `what`, when given, starts the error message."""
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path) and not is_within(real_root, os.path.realpath(path)):
                rel = os.path.relpath(path, root)
                prefix = f"{what}: " if what else ""
                raise LauncherError(f"{prefix}{rel!r} is a link that leaves {root}")


def check_tree(root: str, *, what: str) -> None:
    """The checks an extraction makes, for a folder someone else wrote (a dataset's copy, a
    bundle `monai.bundle download` unpacked): only files, folders and links that stay inside,
    at most MAX_MEMBERS entries and MAX_EXTRACTED_BYTES bytes of files."""
    entries = total = 0
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            entries += 1
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                if not stat.S_ISLNK(info.st_mode):
                    rel = os.path.relpath(path, root)
                    raise LauncherError(f"{what}: {rel!r} is not a file, directory or link")
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
    if entries > MAX_MEMBERS:
        raise LauncherError(f"{what}: more than {MAX_MEMBERS} files and folders")
    if total > MAX_EXTRACTED_BYTES:
        raise LauncherError(f"{what}: {total} bytes is over the limit of {MAX_EXTRACTED_BYTES}")
    _check_links(root, what=what)


def copy_tree_checked(source: str, target: str, *, what: str) -> str:
    """Copies a folder the launcher did not make (a dataset's local copy) after `check_tree`."""
    check_tree(source, what=what)
    shutil.copytree(source, target, symlinks=True)
    return target


# --- MMAR / bundle sources --------------------------------------------------------------------


def find_root(folder: str, marker: str) -> str:
    """The MMAR or bundle root in an unpacked folder: itself when it holds `marker` (a folder),
    or its only subfolder when an archive wrapped everything in one."""
    if os.path.isdir(os.path.join(folder, marker)):
        return folder
    entries = [e for e in os.listdir(folder) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])):
        inner = os.path.join(folder, entries[0])
        if os.path.isdir(os.path.join(inner, marker)):
            return inner
    return folder


def fetch_mmar(args: LaunchArgs, work: str, sdk: "Sdk") -> str:
    """Puts the MMAR or bundle under `work` and returns its root."""
    kind, value = args.mmar_kind, args.mmar_value
    marker = "config" if args.runtime == "ClaraTrain" else "configs"
    target = os.path.join(work, "mmar")
    downloads = os.path.join(work, "downloads")
    os.makedirs(downloads, exist_ok=True)

    if kind == "path":
        if not os.path.isabs(value) or not os.path.isdir(value):
            raise LauncherError(f"argument mmar: path {value!r} is not a folder in the image")
        shutil.copytree(value, target, symlinks=True)
        _check_links(target)
    elif kind in ("url", "ngc"):
        headers: Dict[str, str] = {}
        if kind == "url":
            url, shown = value, public_url(value)
        else:
            url, org = ngc_download_url(value)
            shown = f"NGC model {value}"
            # Before the sign-in: no token is fetched for a download that would be refused.
            require_https(url, "CLARA_LAUNCHER_NGC_API_URL (NGC models)")
            key = next((os.environ[v] for v in NGC_KEY_VARIABLES if os.environ.get(v)), "")
            if key:
                headers["Authorization"] = f"Bearer {ngc_token(key, org)}"
        say(f"downloading the MMAR from {shown}")
        archive = download(url, os.path.join(downloads, "mmar.archive"), headers=headers)
        extract_archive(archive, target)
        os.remove(archive)
    elif kind == "artifact":
        task_id, _, name = value.partition("/")
        if not CLEARML_ID.match(task_id) or not name:
            raise LauncherError(f"argument mmar: artifact {value!r} is not <task id>/<name>")
        say(f"fetching the MMAR from artifact {name!r} of task {task_id}")
        local = sdk.artifact_copy(task_id, name)
        if os.path.isdir(local):
            copy_tree_checked(local, target, what=f"artifact {name!r}")
        else:
            extract_archive(local, target)
    elif kind == "dataset":
        if not CLEARML_ID.match(value):
            raise LauncherError(f"argument mmar: dataset {value!r} is not a ClearML id")
        say(f"fetching the MMAR from dataset {value}")
        local = sdk.dataset_copy(value, what="argument mmar")
        files = [e for e in os.listdir(local) if not e.startswith(".")]
        single = os.path.join(local, files[0]) if len(files) == 1 else ""
        if single and os.path.isfile(single):
            extract_archive(single, target)
        else:
            copy_tree_checked(local, target, what=f"dataset {value}")
    else:  # bundle
        if args.runtime != "MonaiBundle":
            raise LauncherError("argument mmar: a bundle source needs the MonaiBundle runtime")
        shutil.move(download_bundle(value, os.path.join(downloads, "zoo")), target)
        # Checked where it is used: an absolute link into the download folder would not
        # survive the move, and none may point out of the final tree.
        check_tree(target, what=f"bundle {value}")
    return find_root(target, marker)


def download_bundle(ref: str, bundle_dir: str) -> str:
    """`python -m monai.bundle download` of a Model Zoo bundle into `bundle_dir` (created, must
    not exist); returns `bundle_dir/<name>`, which the caller checks with `check_tree`.

    MONAI fetches and unpacks the archive with its own code, from the hosts its version and
    the image's BUNDLE_DOWNLOAD_SRC choose, so the launcher cannot bound that extraction; only
    a name and version that BUNDLE_REF admits reach its command line, never a URL. What the
    check guarantees is about the result (launcher/README.md, "Model Zoo bundles")."""
    match = BUNDLE_REF.match(ref)
    if not match:
        raise LauncherError(f"argument mmar: {ref!r} is not a bundle name[:version]")
    name, version = match.groups()
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "download",
        "--name",
        name,
        "--bundle_dir",
        bundle_dir,
    ]
    if version:
        cmd += ["--version", version]
    say(f"downloading bundle {ref} from the MONAI Model Zoo")
    os.makedirs(bundle_dir)
    code = run_forwarding(cmd, cwd=bundle_dir, env=child_environment())
    bundle = os.path.join(bundle_dir, name)
    if code != 0 or os.path.islink(bundle) or not os.path.isdir(bundle):
        raise RetriableError(
            f"download of bundle {ref} failed (monai.bundle download exited {code})"
        )
    return bundle


# --- dataset and datalist -----------------------------------------------------------------------


def resolve_datalist(data_root: str, dataset_json: str, train_key: str) -> str:
    """The datalist's absolute path: a relative DATASET_JSON is taken from DATA_ROOT. It must
    exist, be a JSON object with a non-empty `train_key` list, and name files that exist."""
    path = dataset_json if os.path.isabs(dataset_json) else os.path.join(data_root, dataset_json)
    if not os.path.isfile(path):
        raise LauncherError(f"DATASET_JSON: datalist {path} does not exist in the dataset")
    try:
        with open(path) as f:
            datalist = json.load(f)
    except (ValueError, UnicodeDecodeError) as err:
        raise LauncherError(f"DATASET_JSON: datalist {path} is not valid JSON: {err}") from None
    if not isinstance(datalist, dict):
        raise LauncherError(f"DATASET_JSON: datalist {path} must be a JSON object of lists")
    entries = datalist.get(train_key)
    if not isinstance(entries, list) or not entries:
        raise LauncherError(f"DATASET_JSON: datalist {path} has no {train_key!r} entries")
    for key, items in datalist.items():
        if not isinstance(items, list):
            continue
        for item in items:
            refs = (
                [item]
                if isinstance(item, str)
                else [item.get(k) for k in ("image", "label")] if isinstance(item, dict) else []
            )
            for ref in refs:
                if not isinstance(ref, str):
                    continue
                full = ref if os.path.isabs(ref) else os.path.join(data_root, ref)
                if not os.path.exists(full):
                    raise LauncherError(
                        f"DATASET_JSON: {key!r} entry {ref!r} of {path} does not exist "
                        "under DATA_ROOT"
                    )
    return path


def data_root_of(local_copy: str, overrides: Dict[str, str]) -> str:
    """DATA_ROOT: the dataset's local copy, or a folder inside it named by `set DATA_ROOT`."""
    sub = overrides.get("DATA_ROOT")
    if not sub:
        return local_copy
    root = inside(local_copy, sub, "set DATA_ROOT (a folder of the dataset)")
    if not os.path.isdir(root):
        raise LauncherError(f"set DATA_ROOT: {sub!r} is not a folder of the dataset")
    return root


# --- config and environment -------------------------------------------------------------------

# Training arch -> config file stems (matched case-insensitively as config/config_train_<stem>.json
# or config/trn_<stem>.json, the NVIDIA sample and ClearML app names) and the network classes a
# plain config/config_train.json may use for it (`clara-mmar.md` §3).
ARCH_TABLE: Dict[str, Tuple[Tuple[str, ...], Tuple[str, ...]]] = {
    "UNet": (("unet",), ("UNet",)),
    "SegResNet": (("segresnet",), ("SegResNet", "SegResNetVAE")),
    "AHNet": (("ahnet",), ("AHNet",)),
    "DynUNet": (("dynunet",), ("DynUNet",)),
    "UNETR": (("unetr",), ("UNETR",)),
    "BasicUNet": (("basicunet",), ("BasicUNet",)),
}


def config_files(root: str) -> List[str]:
    """The JSON/YAML files under the MMAR's config/ and configs/, relative to its root."""
    found = []
    for folder in ("config", "configs"):
        base = os.path.join(root, folder)
        for current, _, files in os.walk(base):
            for name in files:
                if name.endswith((".json", ".yaml", ".yml")):
                    found.append(os.path.relpath(os.path.join(current, name), root))
    return sorted(found)


def _network_names(config: Any) -> List[str]:
    """Names a Clara config gives its `model` component (`name`, or the last part of `path`)."""
    model = config.get("model") if isinstance(config, dict) else None
    if isinstance(model, dict):
        model = [model]
    names = []
    for item in model if isinstance(model, list) else []:
        if isinstance(item, dict):
            for key in ("name", "path"):
                if isinstance(item.get(key), str):
                    names.append(item[key].rsplit(".", 1)[-1])
    return names


def pick_config(root: str, arch: str, config_file: str) -> str:
    """The train config, relative to root: `config_file` as given, or the file of `arch`."""
    if config_file:
        path = inside(root, config_file, "argument config_file")
        if not os.path.isfile(path):
            listed = ", ".join(config_files(root)) or "none"
            raise LauncherError(
                f"argument config_file: {config_file} is not in the MMAR (config files: {listed})"
            )
        return config_file
    if arch not in ARCH_TABLE:
        raise LauncherError(
            f"argument training_arch: unknown arch {arch!r}; known: {', '.join(ARCH_TABLE)} "
            "(or give config_file)"
        )
    stems, networks = ARCH_TABLE[arch]
    candidates = config_files(root)
    wanted = {f"config/{p}{s}.json" for s in stems for p in ("config_train_", "trn_")}
    for rel in candidates:
        if rel.lower() in wanted:
            return rel
    generic = os.path.join(root, "config", "config_train.json")
    if os.path.isfile(generic):
        try:
            with open(generic) as f:
                if set(_network_names(json.load(f))) & set(networks):
                    return "config/config_train.json"
        except ValueError:
            pass
    raise LauncherError(
        f"argument training_arch: the MMAR has no config for {arch} (looked for "
        f"{', '.join(sorted(wanted))} and a config/config_train.json whose model is {arch}); "
        f"its config files: {', '.join(candidates) or 'none'}"
    )


class RunPlan:
    """What the trainer is started with."""

    def __init__(self, *, command: List[str], cwd: str, root: str) -> None:
        self.command = command
        self.cwd = cwd
        self.root = root


def plan_clara(
    args: LaunchArgs, *, root: str, local_copy: str, python: str = sys.executable
) -> RunPlan:
    """Clara Train: the environment file's copy, the datalist check and the train command."""
    overrides = dict(args.overrides)
    config = pick_config(root, args.training_arch, args.config_file)
    env_path = inside(root, args.environment_file, "argument environment_file")
    if not os.path.isfile(env_path):
        raise LauncherError(
            f"argument environment_file: {args.environment_file} is not in the MMAR"
        )
    try:
        with open(env_path) as f:
            environment = json.load(f)
    except ValueError as err:
        raise LauncherError(
            f"environment file {args.environment_file} is not valid JSON: {err}"
        ) from None
    if not isinstance(environment, dict):
        raise LauncherError(f"environment file {args.environment_file} must be a JSON object")

    # The trainer writes its checkpoints and TensorBoard files to MMAR_CKPT_DIR, relative to
    # the MMAR (`clara-mmar.md` §2), wherever the value comes from.
    if "MMAR_CKPT_DIR" in overrides:
        output_folder(root, overrides["MMAR_CKPT_DIR"], what="set MMAR_CKPT_DIR", tree="MMAR")
    elif isinstance(environment.get("MMAR_CKPT_DIR"), str):
        what = f"MMAR_CKPT_DIR of {args.environment_file} (or give set MMAR_CKPT_DIR)"
        output_folder(root, environment["MMAR_CKPT_DIR"], what=what, tree="MMAR")

    data_root = data_root_of(local_copy, overrides)
    dataset_json = overrides.get("DATASET_JSON") or environment.get("DATASET_JSON")
    if not isinstance(dataset_json, str) or not dataset_json:
        raise LauncherError(f"DATASET_JSON: not set; give it in set or in {args.environment_file}")
    train_key = str(environment.get("TRAIN_DATALIST_KEY") or "training")
    datalist = resolve_datalist(data_root, dataset_json, train_key)

    # set entries that name keys of the environment file go into its copy; the rest to --set.
    written = dict(environment)
    passed: List[str] = []
    for key, value in args.overrides:
        if key in ("DATA_ROOT", "DATASET_JSON"):
            continue
        if key in environment:
            written[key] = value
        else:
            passed.append(f"{key}={value}")
    written["DATA_ROOT"] = data_root
    written["DATASET_JSON"] = datalist
    stem, ext = os.path.splitext(args.environment_file)
    env_copy = f"{stem}.clara-operator{ext}"
    with open(os.path.join(root, env_copy), "w") as f:
        json.dump(written, f, indent=2)

    train = [
        "-m",
        "medl.apps.train",
        "-m",
        root,
        "-c",
        config,
        "-e",
        env_copy,
        "--write_train_stats",
    ]
    if args.gpus > 1:
        passed.append("multi_gpu=True")
        command = [
            python,
            "-m",
            "torch.distributed.launch",
            f"--nproc_per_node={args.gpus}",
            "--nnodes=1",
            "--node_rank=0",
            "--master_addr=localhost",
            f"--master_port={free_port()}",
        ] + train
    else:
        command = [python, "-u"] + train
    if passed:
        command += ["--set"] + passed
    return RunPlan(command=command, cwd=root, root=root)


# set keys that stand for a bundle's top-level ids (`clara-mmar.md` §6 "Translating the Set").
BUNDLE_KEYS = {"DATASET_JSON": "data_list_file_path", "MMAR_CKPT_DIR": "ckpt_dir"}
# Bundle ids naming where checkpoints and TensorBoard files go (Model Zoo train.json files
# derive both from bundle_root), and the ids the launcher sets itself.
BUNDLE_OUTPUT_IDS = ("ckpt_dir", "output_dir")
BUNDLE_LAUNCHER_IDS = ("bundle_root", "dataset_dir")


def plan_bundle(
    args: LaunchArgs, *, root: str, local_copy: str, python: str = sys.executable
) -> RunPlan:
    """MONAI bundle: `monai.bundle run` with the dataset and the set entries as overrides."""
    overrides = dict(args.overrides)
    config = args.config_file or "configs/train.json"
    pick_config(root, "", config)
    data_root = data_root_of(local_copy, overrides)
    configs = [os.path.join(root, config)]
    multi = os.path.join(root, "configs", "multi_gpu_train.json")
    if args.gpus > 1 and os.path.isfile(multi):
        configs.append(multi)

    extra: List[str] = ["--bundle_root", root, "--dataset_dir", data_root]
    for key, value in args.overrides:
        bundle_id = BUNDLE_KEYS.get(key, key)
        if key == "DATA_ROOT":
            continue
        if bundle_id in BUNDLE_LAUNCHER_IDS:
            raise LauncherError(
                f"set {key}: the launcher sets {bundle_id} itself (the bundle's folder and "
                "DATA_ROOT); use set DATA_ROOT for a folder of the dataset"
            )
        if key == "DATASET_JSON":
            value = resolve_datalist(data_root, value, "training")
        elif bundle_id in BUNDLE_OUTPUT_IDS:
            if value.startswith(("$", "@", "%")):
                raise LauncherError(
                    f"set {key}: expected a folder inside the bundle (a relative path such as "
                    f"models/run1), got the expression {value!r}"
                )
            value = output_folder(root, value, what=f"set {key}", tree="bundle")
        extra += [f"--{bundle_id}", value]
    for option, rel in (
        ("--meta_file", "configs/metadata.json"),
        ("--logging_file", "configs/logging.conf"),
    ):
        if os.path.isfile(os.path.join(root, rel)):
            extra += [option, os.path.join(root, rel)]

    config_arg = configs[0] if len(configs) == 1 else json.dumps(configs)
    run = ["-m", "monai.bundle", "run", "--config_file", config_arg] + extra
    if args.gpus > 1:
        command = [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc_per_node={args.gpus}",
        ] + run
    else:
        command = [python, "-u"] + run
    return RunPlan(command=command, cwd=root, root=root)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- TensorBoard event files --------------------------------------------------------------------


def _crc32c_table() -> List[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C, rotated and offset ("masked")."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(data: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data):
            raise ValueError("truncated varint")
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(data: bytes) -> Iterator[Tuple[int, int, Any]]:
    """Protobuf wire fields: (number, wire type, value as int or bytes)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _tensor_scalar(data: bytes) -> Optional[float]:
    """The value of a one-element float/double TensorProto (TF2-style scalar summaries)."""
    dtype, values = 0, []  # type: Tuple[int, List[float]]
    content = b""
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            dtype = value
        elif number == 4 and wire == 2:
            content = value
        elif number == 5:
            values += (
                list(struct.unpack(f"<{len(value) // 4}f", value))
                if wire == 2
                else list(struct.unpack("<f", value))
            )
        elif number == 6:
            values += (
                list(struct.unpack(f"<{len(value) // 8}d", value))
                if wire == 2
                else list(struct.unpack("<d", value))
            )
    if not values and content:
        if dtype == 1 and len(content) == 4:
            values = list(struct.unpack("<f", content))
        elif dtype == 2 and len(content) == 8:
            values = list(struct.unpack("<d", content))
    return values[0] if len(values) == 1 else None


def scalars_of_event(record: bytes) -> List[Tuple[str, int, float]]:
    """(tag, step, value) of every scalar in one serialized `Event`."""
    step, summary = 0, b""
    for number, wire, value in _fields(record):
        if number == 2 and wire == 0:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5 and wire == 2:
            summary = value
    out = []
    for number, wire, value in _fields(summary):
        if number != 1 or wire != 2:
            continue
        tag, scalar = "", None  # type: Tuple[str, Optional[float]]
        for vnum, vwire, vval in _fields(value):
            if vnum == 1 and vwire == 2:
                tag = vval.decode("utf-8", "replace")
            elif vnum == 2 and vwire == 5:
                scalar = struct.unpack("<f", vval)[0]
            elif vnum == 8 and vwire == 2:
                scalar = _tensor_scalar(vval)
        if tag and scalar is not None:
            out.append((tag, step, float(scalar)))
    return out


class EventFileReader:
    """Reads the complete records of one growing TFRecord file, from where it left off."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.broken = False

    def read_new(self) -> List[Tuple[str, int, float]]:
        if self.broken:
            return []
        out: List[Tuple[str, int, float]] = []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        i = 0
        while len(data) - i >= 12:
            header = data[i : i + 8]
            (length,) = struct.unpack("<Q", header)
            if struct.unpack("<I", data[i + 8 : i + 12])[0] != masked_crc32c(header):
                self.broken = True
                say(f"warning: {self.path} has a corrupt record; its later scalars are skipped")
                break
            end = i + 12 + length + 4
            if end > len(data):
                break  # the writer has not finished this record yet
            record = data[i + 12 : i + 12 + length]
            if struct.unpack("<I", data[end - 4 : end])[0] == masked_crc32c(record):
                try:
                    out.extend(scalars_of_event(record))
                except (ValueError, struct.error):
                    pass  # not an Event we understand; TensorBoard skips these too
            i = end
        self.offset += i
        return out


def operator_name(tag: str) -> Tuple[str, str]:
    """(title, series) a TensorBoard tag is reported under: the operator's names for its four
    scalars and their bundle aliases; otherwise split on the first '/' as ClearML's TensorBoard
    binding does (a tag without '/' is title and series)."""
    name = SCALAR_ALIASES.get(tag, tag)
    if name in OPERATOR_SCALARS:
        return name, name
    title, sep, series = tag.partition("/")
    return (title, series) if sep else (tag, tag)


class ScalarForwarder:
    """Reports the scalars of every TensorBoard event file under `root` to ClearML, polling
    while the trainer runs and once more when it has ended."""

    def __init__(
        self, root: str, report: Callable[[str, str, float, int], None], interval_s: float = 2.0
    ) -> None:
        self.root = root
        self.report = report
        self.interval_s = interval_s
        self.readers: Dict[str, EventFileReader] = {}
        self.reported = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scalar-forwarder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()

    def _loop(self) -> None:
        warned = False
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as err:  # a reporting hiccup must not end the scalars for good
                if not warned:
                    say(f"warning: reporting scalars failed ({err}); will keep trying")
                    warned = True

    def poll(self) -> None:
        for folder, _, files in os.walk(self.root):
            for name in files:
                if "tfevents" in name:
                    path = os.path.join(folder, name)
                    self.readers.setdefault(path, EventFileReader(path))
        for path in sorted(self.readers):
            try:
                scalars = self.readers[path].read_new()
            except OSError:
                continue
            for tag, step, value in scalars:
                title, series = operator_name(tag)
                self.report(title, series, value, step)
                self.reported += 1


# --- processes -------------------------------------------------------------------------------


def child_environment() -> Dict[str, str]:
    """The trainer's environment: the launcher's, without SECRET_VARIABLES."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_forwarding(
    command: Sequence[str], *, cwd: str, env: Dict[str, str], tail: Optional[List[str]] = None
) -> int:
    """Runs `command` (an argv list, no shell), copies its console to ours line by line and
    returns its exit code. SIGTERM to the launcher (an abort) is passed on to the child."""
    child = subprocess.Popen(
        list(command), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )

    def forward_term(signum: int, frame: Any) -> None:
        if child.poll() is None:
            child.terminate()

    previous = signal.signal(signal.SIGTERM, forward_term)
    try:
        assert child.stdout is not None
        for raw in iter(child.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            sys.stdout.write(line)
            sys.stdout.flush()
            if tail is not None:
                tail.append(line.rstrip())
                del tail[:-20]
        return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if child.poll() is None:
            child.kill()
            child.wait()


# --- ClearML ----------------------------------------------------------------------------------


class Sdk:
    """The few ClearML SDK calls the launcher makes, on the task it runs as."""

    task: Any

    def __init__(self) -> None:
        if not os.environ.get("CLEARML_TASK_ID"):
            raise LauncherError(
                "CLEARML_TASK_ID is not set: the launcher runs as a task created by clara-operator "
                "(clearml-agent sets it)"
            )
        try:
            from clearml import Task
        except ImportError:
            raise LauncherError(
                "the clearml package is not installed in the training image"
            ) from None
        # The SDK retries an unreachable server for a long time without a word: say where.
        host = os.environ.get("CLEARML_API_HOST") or "the api_server of clearml.conf"
        say(f"connecting to ClearML at {host} as task {os.environ['CLEARML_TASK_ID']}")
        try:
            self.task = Task.init(
                auto_connect_arg_parser=False,
                auto_connect_frameworks=False,
                auto_resource_monitoring=False,
            )
        except Exception as err:
            if type(err).__name__ != "MissingConfigError":
                raise
            raise LauncherError(
                "ClearML is not configured: set CLEARML_API_HOST, CLEARML_API_ACCESS_KEY and "
                "CLEARML_API_SECRET_KEY (clearml-agent sets them for the task it runs)"
            ) from None
        self.logger: Any = self.task.get_logger()

    def parameters(self) -> Dict[str, str]:
        return dict(self.task.get_parameters(cast=False) or {})

    def dataset_copy(self, dataset_id: str, *, what: str) -> str:
        from clearml import Dataset

        try:
            dataset = Dataset.get(dataset_id=dataset_id)
        except ValueError as err:
            raise LauncherError(f"{what}: {dataset_id} is not a ClearML dataset: {err}") from None
        path = dataset.get_local_copy()
        if not path or not os.path.isdir(path):
            raise RetriableError(f"{what}: the files of dataset {dataset_id} could not be fetched")
        return str(path)

    def artifact_copy(self, task_id: str, name: str) -> str:
        from clearml import Task

        try:
            source: Any = Task.get_task(task_id=task_id)
        except ValueError as err:
            raise LauncherError(f"argument mmar: task {task_id} not found: {err}") from None
        artifact = source.artifacts.get(name)
        if artifact is None:
            names = ", ".join(sorted(source.artifacts)) or "none"
            raise LauncherError(
                f"argument mmar: task {task_id} has no artifact {name!r} (it has: {names})"
            )
        try:
            path = artifact.get_local_copy(extract_archive=False, raise_on_error=True)
        except Exception as err:  # the SDK raises plain ValueError/OSError here
            raise RetriableError(
                f"argument mmar: artifact {name!r} could not be fetched: {err}"
            ) from None
        if not path:
            raise RetriableError(f"argument mmar: artifact {name!r} could not be fetched")
        return str(path)

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        self.logger.report_scalar(title, series, value=value, iteration=iteration)

    def register_model(self, path: str, name: str) -> str:
        from clearml import OutputModel

        destination = self.task.output_uri or self.logger.get_default_upload_destination()
        model = OutputModel(task=self.task, name=name, framework="PyTorch")
        model.update_weights(
            weights_filename=path,
            upload_uri=destination,
            auto_delete_file=False,
            async_enable=False,
        )
        return str(model.url)

    def flush(self) -> None:
        self.task.flush(wait_for_uploads=True)


def model_files(root: str) -> Dict[str, Tuple[int, int]]:
    """Model files (`*.pt`, `*.ts`) under root, with their (mtime in ns, size)."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(MODEL_SUFFIXES) and os.path.isfile(path) and not os.path.islink(path):
                info = os.stat(path)
                found[path] = (info.st_mtime_ns, info.st_size)
    return found


def written_models(root: str, before: Dict[str, Tuple[int, int]]) -> List[str]:
    """The model files the run wrote: new since `before`, or changed (a pretrained model.pt
    the MMAR shipped counts only if training overwrote it)."""
    return sorted(p for p, state in model_files(root).items() if before.get(p) != state)


# --- main -------------------------------------------------------------------------------------


def launch(sdk: Sdk, work: str) -> None:
    args = parse_args(sdk.parameters())
    source = public_url(args.mmar_value) if args.mmar_kind == "url" else args.mmar_value
    say(f"runtime {args.runtime}, MMAR {args.mmar_kind}:{source}, {args.gpus} GPU(s)")

    say(f"fetching dataset {args.dataset_task}")
    local_copy = sdk.dataset_copy(args.dataset_task, what="argument dataset_task")
    say(f"DATA_ROOT is {local_copy}")

    root = fetch_mmar(args, work, sdk)
    planner = plan_clara if args.runtime == "ClaraTrain" else plan_bundle
    plan = planner(args, root=root, local_copy=local_copy)
    say("training: " + " ".join(plan.command[1:]))

    shipped = model_files(root)
    forwarder = ScalarForwarder(root, sdk.report_scalar)
    forwarder.start()
    tail: List[str] = []
    try:
        code = run_forwarding(plan.command, cwd=plan.cwd, env=child_environment(), tail=tail)
    finally:
        forwarder.stop()
    say(f"reported {forwarder.reported} scalar values from TensorBoard event files")
    if code != 0:
        trainer = plan.command[plan.command.index("-m") + 1] if "-m" in plan.command else "trainer"
        last = next((line for line in reversed(tail) if line.strip()), "")
        raise TrainingError(
            f"training failed: {trainer} exited with code {code}" + (f" ({last})" if last else "")
        )

    models = written_models(root, shipped)
    if not models:
        raise TrainingError("training wrote no model file (*.pt, *.ts)")
    for path in models:
        name = os.path.relpath(path, root)
        try:
            url = sdk.register_model(path, name)
        except Exception as err:  # upload failures surface as assorted SDK exceptions
            raise RetriableError(f"output model {name} could not be registered: {err}") from None
        say(
            f"registered output model {name} ({public_url(url) if url.startswith('http') else url})"
        )
    sdk.flush()
    say("done")


def main() -> int:
    sdk: Optional[Sdk] = None
    work = os.environ.get("CLARA_LAUNCHER_WORK_DIR") or tempfile.mkdtemp(prefix="clara-run-")
    try:
        if SETTING_PROBLEMS:
            raise LauncherError("; ".join(SETTING_PROBLEMS))
        sdk = Sdk()
        launch(sdk, work)
        return 0
    except LauncherError as err:
        code, reason = err.exit_code, str(err)
    except Exception as err:  # a bug or an SDK failure: still one clear last line
        code, reason = EXIT_RETRIABLE, f"unexpected {type(err).__name__}: {err}"
    finally:
        if not os.environ.get("CLARA_LAUNCHER_WORK_DIR"):
            shutil.rmtree(work, ignore_errors=True)
    if sdk is not None:
        try:
            sdk.flush()
        except Exception:  # reporting the reason matters more than a failed flush
            pass
    say(f"error: {reason}")
    return code


if __name__ == "__main__":
    sys.exit(main())
