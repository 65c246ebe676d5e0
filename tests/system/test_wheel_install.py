"""The wheel as users (and the Docker image) install it: built, installed outside the
checkout, and run from a directory where nothing can be imported from the checkout."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest
from pypdf import PdfWriter

from tests.support.jobs import wait_for_job
from tests.support.pdf_tools import pdf_text
from tests.support.processes import REPO_ROOT, Processes

pytestmark = pytest.mark.slow

PACKAGES = ("service", "brokers", "tasks", "schemas")
MODULES = ("scheduler",)
MODULE_FILES = {f"{module}.py" for module in MODULES}
PACKAGE_DATA = {"tasks/fonts/DejaVuSans.ttf", "tasks/fonts/LICENSE"}


def uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    assert found, "uv is needed to build and install the wheel (./dev installs it)"
    return found


def run(*argv: str, cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


def checkout_files() -> list[str]:
    """The checkout's files as a clone would have them, plus new ones git does not ignore."""
    listed = run("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=REPO_ROOT)
    return [name for name in listed.splitlines() if (REPO_ROOT / name).is_file()]


def build_wheel(out_dir: Path) -> Path:
    """The wheel of a copy of the checkout as a clone (or the Docker build context) has it.

    Not the checkout itself: setuptools reuses its build/ and *.egg-info/, and an old
    SOURCES.txt there once put a package that the configuration left out into the wheel.
    """
    source = out_dir / "source"
    for name in checkout_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)
    run(uv(), "build", "--wheel", "--quiet", "--out-dir", str(out_dir), cwd=source)
    (wheel,) = out_dir.glob("offload-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> None:
    """A fresh venv with the locked dependencies from uv's cache (the registry if missing)."""
    run(uv(), "venv", "--quiet", "--python", sys.executable, str(venv), cwd=venv.parent)
    requirements = venv.parent / "requirements.txt"
    run(
        uv(),
        "export",
        "--frozen",
        "--no-dev",
        "--no-hashes",
        "--no-emit-project",
        "--quiet",
        "--output-file",
        str(requirements),
        cwd=REPO_ROOT,
    )
    install = [uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    install += ["-r", str(requirements), str(wheel)]
    try:
        run(*install, "--offline", cwd=venv.parent)
    except AssertionError:
        run(*install, cwd=venv.parent)


def our_sources() -> set[str]:
    """Every module of ours in the checkout, as the wheel should hold it."""
    ours = tuple(f"{package}/" for package in PACKAGES)
    return {
        name
        for name in checkout_files()
        if (name.startswith(ours) and name.endswith(".py"))
        or name in MODULE_FILES
        or name in PACKAGE_DATA
    }


def test_the_wheel_holds_every_module_of_ours_and_nothing_else(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        names = {name for name in archive.namelist() if ".dist-info/" not in name}
    assert names == our_sources(), (
        f"missing: {sorted(our_sources() - names)}; extra: {sorted(names - our_sources())}"
    )


async def test_the_installed_wheel_serves_and_runs_workers(
    processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv = tmp_path / "venv"
    install(build_wheel(tmp_path / "dist"), venv)
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    monkeypatch.delenv("PYTHONPATH", raising=False)

    probe = "; ".join(
        [f"import {name}" for name in (*PACKAGES, *MODULES, "brokers.redis", "brokers.sqlite")]
        + [f"print({name}.__file__)" for name in (*PACKAGES, *MODULES)]
    )
    files = run(str(venv / "bin" / "python"), "-c", probe, cwd=elsewhere).split()
    site_packages = next((venv / "lib").glob("python*/site-packages"))
    assert all(Path(file).is_relative_to(site_packages) for file in files), files

    processes.bin_dir = venv / "bin"
    processes.cwd = elsewhere
    serve = processes.serve(wait=False)
    assert serve.base_url is not None
    async with httpx.AsyncClient(base_url=serve.base_url, timeout=10) as http:
        processes.wait_until(lambda: ready(serve.base_url), "/readyz 200", timeout=30, watch=serve)
        response = await http.post("/v1/jobs/qr", json={"data": "from the wheel", "format": "svg"})
        assert response.status_code == 202, response.text
        job = await wait_for_job(http, response.json()["id"], timeout=20)
        assert job["status"] == "succeeded", job
        result = await http.get(f"/v1/jobs/{job['id']}/result")
        assert result.status_code == 200 and b"<svg" in result.content
        await watermark_from_the_wheel(http, tmp_path)

    processes.offload_worker(timeout=30)


async def watermark_from_the_wheel(http: httpx.AsyncClient, tmp_path: Path) -> None:
    """Text in PDFs is set in the font the package ships, found from site-packages."""
    blank = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    writer.write(blank)
    uploaded = await http.post(
        "/v1/files", files={"file": ("blank.pdf", blank.getvalue(), "application/pdf")}
    )
    assert uploaded.status_code == 201, uploaded.text
    response = await http.post(
        "/v1/jobs/pdf/watermark", json={"file_id": uploaded.json()["id"], "text": "Ünïcode ✓"}
    )
    assert response.status_code == 202, response.text
    job = await wait_for_job(http, response.json()["id"], timeout=30)
    assert job["status"] == "succeeded", job
    output = tmp_path / "watermarked.pdf"
    output.write_bytes((await http.get(f"/v1/jobs/{job['id']}/result")).content)
    assert "Ünïcode ✓" in pdf_text(output)


def ready(base_url: str | None) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False
