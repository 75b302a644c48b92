"""MMAR sources other than a path in the image, each through a full launcher run under the SDK:
an https archive (and a hostile one), an NGC model with an API key (signed in on a stand-in
authn/NGC server over TLS), a ClearML artifact and a ClearML dataset."""

import http.server
import io
import json
import ssl
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

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
