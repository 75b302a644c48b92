"""MMAR sources other than a path in the image, each through a full launcher run under the SDK:
an https archive (and a hostile one), an NGC model with an API key (signed in on a stand-in
authn/NGC server over TLS), a ClearML artifact and a ClearML dataset."""

import http.server
import io
import json
import socketserver
import ssl
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

import clara_launcher as launcher
from conftest import HERE, fidelity, make_mmar, set_list
from test_archives import make_tar

NGC_KEY = "nvapi-SECRET-key-never-logged"
TOKEN = "bearer-token-from-authn"
SIGNATURE = "X-Amz-Signature=also-secret"


def zip_folder(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


class Site:
    """A TLS server standing in for NGC (authn + model zip with a signed redirect) and for any
    https host; `requests` records (path, Authorization header)."""

    def __init__(self, tmp: Path, mmar_zip: bytes, evil_tar: bytes) -> None:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )
        self.cert = cert
        self.mmar_zip = mmar_zip
        self.requests: List[Dict[str, str]] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output clean
                pass

            def send(self, code: int, body: bytes = b"", headers: Dict[str, str] = {}):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                site.requests.append({"path": self.path, "auth": auth})
                import base64

                basic = "Basic " + base64.b64encode(f"$oauthtoken:{NGC_KEY}".encode()).decode()
                if self.path.startswith("/token?"):
                    ok = auth == basic and "scope=group%2Fngc%3Anvidia" in self.path
                    self.send(
                        200 if ok else 401, json.dumps({"token": TOKEN}).encode() if ok else b""
                    )
                elif self.path == "/v2/models/nvidia/med/clara_pt_spleen/versions/4.1/zip":
                    if auth != f"Bearer {TOKEN}":
                        self.send(401)
                    else:
                        self.send(302, headers={"Location": f"/signed/mmar.zip?{SIGNATURE}"})
                elif self.path.startswith("/signed/mmar.zip"):
                    self.send(200, mmar_zip)
                elif self.path == "/mmar.zip":
                    self.send(200, mmar_zip)
                elif self.path == "/unsized/mmar.zip":
                    # No Content-Length: the body ends when the connection closes (HTTP/1.0).
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(mmar_zip)
                elif self.path == "/evil.tar.gz":
                    self.send(200, evil_tar)
                elif self.path == "/to-http":
                    self.send(302, headers={"Location": "http://127.0.0.1:1/mmar.zip"})
                else:
                    self.send(404)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def env(self) -> Dict[str, str]:
        return {
            "SSL_CERT_FILE": str(self.cert),
            "CLARA_LAUNCHER_NGC_API_URL": self.url,
            "CLARA_LAUNCHER_NGC_AUTHN_URL": self.url,
        }


@pytest.fixture
def site(tmp_path: Path):
    # NGC zips hold the MMAR's folders at the top; this one wraps them in one folder, which
    # the launcher unwraps.
    mmar = make_mmar(tmp_path / "pack" / "clara_pt_spleen")
    evil = make_tar(
        tmp_path / "evil.tar.gz",
        [("file", "config/x.json", "{}"), ("file", "../../escape.sh", "rm -rf /")],
    )
    server = Site(tmp_path, zip_folder(mmar.parent), evil.read_bytes())
    yield server
    server.server.shutdown()
    server.server.server_close()


def args_for(dataset_id: str, mmar: str):
    return {
        "runtime": "ClaraTrain",
        "dataset_task": dataset_id,
        "mmar": mmar,
        "training_arch": "UNet",
        "config_file": "",
        "environment_file": "config/environment.json",
        "set": set_list({"DATASET_JSON": "dataset.json", "epochs": "1"}),
        "gpus": "1",
    }


def test_an_https_zip_is_downloaded_and_unwrapped(launch, dataset_id, site):
    result = launch(
        args_for(dataset_id, f"url:{site.url}/mmar.zip"), extra_env=site.env(), name="src-url"
    )
    assert result.returncode == 0, result.output[-3000:]
    assert len(result.models) == 2


def test_a_hostile_archive_from_a_url_fails_the_run(launch, dataset_id, site, tmp_path: Path):
    result = launch(
        args_for(dataset_id, f"url:{site.url}/evil.tar.gz"), extra_env=site.env(), name="src-evil"
    )
    assert result.returncode == 2
    assert result.output.rstrip().endswith(
        "clara-launcher: error: archive mmar.archive: member '../../escape.sh' leaves the target "
        "directory ('..')"
    )
    assert not any(p.name == "escape.sh" for p in tmp_path.parent.rglob("escape.sh"))


def test_a_signed_url_is_downloaded_but_its_query_never_reaches_the_output(
    launch, dataset_id, site
):
    url = f"{site.url}/signed/mmar.zip?X-Amz-Signature=secret&X-Amz-Credential=AKIA"
    result = launch(args_for(dataset_id, f"url:{url}"), extra_env=site.env(), name="src-signed")

    assert result.returncode == 0, result.output[-3000:]
    assert f"MMAR url:{site.url}/signed/mmar.zip, 1 GPU(s)" in result.output
    assert f"downloading the MMAR from {site.url}/signed/mmar.zip\n" in result.output
    for text in (result.output, "\n".join(result.log)):
        assert "secret" not in text and "X-Amz" not in text


def test_a_download_over_the_size_limit_is_refused_as_it_streams(launch, dataset_id, site):
    # The server sends no Content-Length, so only the bytes received can trip the limit.
    limit = len(site.mmar_zip) - 1
    result = launch(
        args_for(dataset_id, f"url:{site.url}/unsized/mmar.zip"),
        extra_env={**site.env(), "CLARA_LAUNCHER_MAX_ARCHIVE_BYTES": str(limit)},
        name="src-too-big",
    )
    assert result.returncode == 2
    assert result.output.rstrip().endswith(
        f"clara-launcher: error: download of {site.url}/unsized/mmar.zip: over the limit of "
        f"{limit} bytes"
    )
    assert result.models == []


def test_a_download_declaring_more_than_the_limit_is_refused_and_leaves_no_file(
    site, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(site.cert))
    monkeypatch.setattr(launcher, "MAX_ARCHIVE_BYTES", 100)
    dest = tmp_path / "mmar.archive"
    with pytest.raises(launcher.LauncherError) as refused:
        launcher.download(f"{site.url}/mmar.zip", str(dest))
    assert str(refused.value) == (
        f"download of {site.url}/mmar.zip: {len(site.mmar_zip)} bytes is over the limit of "
        "100 bytes"
    )
    assert not dest.exists()
    # The same download within the limit works (the refusal was the limit, not the TLS setup).
    monkeypatch.setattr(launcher, "MAX_ARCHIVE_BYTES", len(site.mmar_zip))
    assert Path(launcher.download(f"{site.url}/mmar.zip", str(dest))).read_bytes() == site.mmar_zip


class Listener:
    """A TCP port that records every connection made to it and answers nothing."""

    def __init__(self) -> None:
        self.connections: List[str] = []
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                listener.connections.append(self.client_address[0])

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.parametrize(
    "authn, api, message",
    [
        ("http://127.0.0.1:{port}", "https://127.0.0.1:{port}", "CLARA_LAUNCHER_NGC_AUTHN_URL"),
        ("https://127.0.0.1:{port}", "http://127.0.0.1:{port}", "CLARA_LAUNCHER_NGC_API_URL"),
    ],
    ids=["sign-in over http", "models over http"],
)
def test_ngc_over_plain_http_is_refused_before_the_key_is_sent(
    authn, api, message, listener, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(launcher, "NGC_AUTHN_URL", authn.format(port=listener.port))
    monkeypatch.setattr(launcher, "NGC_API_URL", api.format(port=listener.port))
    monkeypatch.setenv("NGC_API_KEY", NGC_KEY)
    args = launcher.parse_args(
        {
            "Args/dataset_task": "0123456789abcdef0123456789abcdef",
            "Args/mmar": "ngc:clara_pt_spleen:4.1",
            "Args/training_arch": "UNet",
        }
    )
    with pytest.raises(launcher.LauncherError) as refused:
        launcher.fetch_mmar(args, str(tmp_path), sdk=None)
    assert str(refused.value).startswith(f"{message} (")
    assert ": only https URLs are allowed, got http://127.0.0.1:" in str(refused.value)
    assert refused.value.exit_code == launcher.EXIT_PERMANENT
    assert listener.connections == []


def test_a_redirect_to_plain_http_is_refused(launch, dataset_id, site):
    result = launch(
        args_for(dataset_id, f"url:{site.url}/to-http"), extra_env=site.env(), name="src-http"
    )
    assert result.returncode == 2
    assert result.output.rstrip().endswith(
        f"download of {site.url}/to-http: redirected to a non-https URL"
    )


def test_an_ngc_model_is_fetched_with_the_api_key_which_never_reaches_the_output(
    launch, dataset_id, site
):
    env = {**site.env(), "NGC_API_KEY": NGC_KEY}
    result = launch(args_for(dataset_id, "ngc:clara_pt_spleen:4.1"), extra_env=env, name="src-ngc")

    assert result.returncode == 0, result.output[-3000:]
    assert "downloading the MMAR from NGC model clara_pt_spleen:4.1" in result.output
    assert NGC_KEY not in result.output and TOKEN not in result.output
    assert SIGNATURE not in result.output
    # The launcher had the key and the ClearML keys; the trainer it started had none of them.
    assert "fake medl.apps.train: credentials in its environment: none" in result.output
    # The bearer token went to NGC only, not on to the signed storage URL it redirected to.
    signed = [r for r in site.requests if r["path"].startswith("/signed/")]
    assert signed and all(r["auth"] == "" for r in signed)


def test_a_clearml_artifact_folder_is_the_mmar(
    launch, dataset_id, ts_client, clearml_env, tmp_path: Path
):
    mmar = make_mmar(tmp_path / "published")
    source = ts_client("create-task", "Launcher", "mmar-publisher")["id"]
    fidelity.run(
        [sys.executable, str(HERE / "scripts" / "artifact_upload.py"), str(mmar), "mmar"],
        {**clearml_env, "CLEARML_TASK_ID": source},
        timeout=120,
        cwd=tmp_path,
    )
    result = launch(args_for(dataset_id, f"artifact:{source}/mmar"), name="src-artifact")
    assert result.returncode == 0, result.output[-3000:]
    assert len(result.models) == 2

    missing = launch(
        args_for(dataset_id, f"artifact:{source}/weights"), name="src-artifact-missing"
    )
    assert missing.returncode == 2
    assert missing.output.rstrip().endswith(
        f"task {source} has no artifact 'weights' (it has: mmar)"
    )


def test_a_clearml_dataset_is_the_mmar(launch, dataset_id, clearml_env, tmp_path: Path):
    mmar = make_mmar(tmp_path / "as-dataset")
    out = fidelity.run(
        [sys.executable, str(fidelity.SCRIPTS / "dataset_create.py"), str(mmar)], clearml_env
    )
    mmar_dataset = out.split("DATASET_ID=")[1].strip()
    result = launch(args_for(dataset_id, f"dataset:{mmar_dataset}"), name="src-dataset")
    assert result.returncode == 0, result.output[-3000:]
    assert len(result.models) == 2
