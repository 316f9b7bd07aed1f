"""The web page's files over HTTP (no browser): served without a key, with a strict Content-Security-Policy,
from the package; nothing else opened up by it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import Kit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

KEY = "web-assets-key-2b7e9d4c10"


def test_the_page_and_its_assets_need_no_key_and_forbid_foreign_content(env: object, kit: type[Kit]) -> None:
    with (
        kit.serve(create_app(ServerSettings(api_keys=KEY), start_model=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert '<script src="/ui/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
        for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
            asset = c.get(f"/ui/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind), name
            assert "://" not in asset.text, f"{name} refers to nothing outside the server"
        assert "innerHTML" not in c.get("/ui/app.js").text, "model and document text is set as text only"

        for missing in ("/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2E%2E/routes/web.py", "/ui/"):
            resp = c.get(missing)
            assert resp.status_code == 404, (missing, resp.text)
            assert set(resp.json()) == {"error"}
        # The page is open; the API it calls is not.
        kit.assert_error(c.get("/v1/threads"), 401)
        kit.assert_error(c.get("/v1/models"), 401)
        kit.assert_error(c.post("/", json={}), 405)
