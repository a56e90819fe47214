"""On a server without Pango, reporting's PDF brochure answers 503 with a problem+json body that
names the Debian packages to install, and everything else (the HTML brochure, the reports)
keeps working.

Reporting's real app (service_app, the runtime's lifespan) on the session's database and
broker, called in-process. Pango is taken away the way a machine without it does: cffi cannot
open the library, so importing WeasyPrint raises OSError (WeasyPrint is imported afresh)."""

import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cffi
import httpx
import pytest
import pytest_asyncio
import yaml
from pydantic import SecretStr

from c2f_cli.stack import Stack
from c2f_reporting import brochure
from c2f_reporting.app import create_app
from c2f_reporting.config import Settings
from tests.support import isolated_settings

SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")  # the session's servers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def without_pango(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """WeasyPrint, imported again, finds no Pango; afterwards the modules are as they were."""
    loaded = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "weasyprint"}
    opened = cffi.FFI.dlopen

    def dlopen(ffi: cffi.FFI, name: str, *args: Any) -> Any:
        if "pango" in name:
            raise OSError(f"cannot load library '{name}': {name}: cannot open shared object file")
        return opened(ffi, name, *args)

    monkeypatch.setattr(cffi.FFI, "dlopen", dlopen)
    for name in loaded:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "weasyprint"]:
            del sys.modules[name]
        sys.modules.update(loaded)


@pytest_asyncio.fixture(loop_scope="session")
async def reporting(infra: Stack) -> AsyncIterator[httpx.AsyncClient]:
    settings = isolated_settings(
        infra,
        "nopango",
        Settings,
        operator_token=SecretStr(f"operator-{uuid.uuid4().hex}"),
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://reporting.test") as client:
            yield client


@SESSION_LOOP
async def test_the_pdf_brochure_says_what_to_install_and_the_rest_works(
    without_pango: None, reporting: httpx.AsyncClient
) -> None:
    pdf = await reporting.get("/brochure.pdf", params={"market": "MX", "sector": "mobility"})
    assert pdf.status_code == 503, pdf.text
    assert pdf.headers["content-type"] == "application/problem+json"
    problem = pdf.json()
    assert problem["status"] == 503 and problem["title"] == "PDF brochure unavailable"
    assert problem["type"].endswith("/pdf-unavailable")
    assert "Pango" in problem["detail"]
    for package in brochure.PDF_PACKAGES:
        assert package in problem["detail"]
    assert "HTML brochure" in problem["detail"]
    # The rest of the service is unaffected.
    page = await reporting.get("/brochure.html", params={"market": "MX", "sector": "mobility"})
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert (await reporting.get("/reports/partnership")).status_code == 200
    # And the OpenAPI document lists the answer.
    document = (await reporting.get("/openapi.json")).json()
    answers = document["paths"]["/brochure.pdf"]["get"]["responses"]
    assert "application/problem+json" in answers["503"]["content"]


@SESSION_LOOP
async def test_with_pango_the_pdf_is_typeset(reporting: httpx.AsyncClient) -> None:
    pdf = await reporting.get("/brochure.pdf")
    assert pdf.status_code == 200, pdf.text
    assert pdf.content.startswith(b"%PDF-")


def test_the_packages_named_are_those_the_makefile_and_the_image_install() -> None:
    [makefile] = re.findall(r"^PDF_PACKAGES := (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert tuple(makefile.split()) == brochure.PDF_PACKAGES
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["reporting"]["build"]["args"]["SYSTEM_PACKAGES"]
    assert tuple(image.split()) == brochure.PDF_PACKAGES
