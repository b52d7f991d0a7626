"""A small client for Superset's REST API (login, CSRF, paging, JSON errors)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import requests


class SupersetAPIError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: str):
        super().__init__(f"{method} {path} -> HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def rison_list(
    page: int,
    page_size: int,
    filters: list[tuple[str, str, Any]] | None = None,
    columns: tuple[str, ...] = (),
) -> str:
    """Minimal rison for Superset list queries: (page:0,page_size:100,filters:!((col:x,opr:eq,value:'y')))."""
    parts = [f"page:{page}", f"page_size:{page_size}"]
    if columns:
        parts.append(f"columns:!({','.join(columns)})")
    if filters:
        fs = ",".join(f"(col:{c},opr:{o},value:{_rison_value(v)})" for c, o, v in filters)
        parts.append(f"filters:!({fs})")
    return "(" + ",".join(parts) + ")"


def _rison_value(v: Any) -> str:
    if isinstance(v, bool):
        return "!t" if v else "!f"
    if isinstance(v, int | float):
        return str(v)
    s = str(v).replace("!", "!!").replace("'", "!'")
    return f"'{s}'"


def is_loopback(host: str | None) -> bool:
    """Pure: does `host` name this machine's loopback (127.0.0.0/8, ::1, localhost)?"""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


class LoopbackSession(requests.Session):
    """Behind the TLS proxy Superset marks its session cookie Secure (CALLSIGHT_HTTPS=1), while callsight
    reaches it over loopback HTTP, which never leaves the machine: cookies of a loopback host go back to
    it over HTTP too (with its CSRF token's session), as browsers treat loopback. Other hosts keep the rule."""

    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        response = super().send(request, **kw)
        for cookie in self.cookies:
            if cookie.secure and is_loopback(cookie.domain):
                cookie.secure = False
        return response


class SupersetClient:
    def __init__(self, base_url: str, timeout: float = 60):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session: requests.Session = LoopbackSession()
        self.username: str | None = None

    # ---- auth ---------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> SupersetClient:
        r = self.session.post(
            f"{self.base_url}/api/v1/security/login",
            timeout=self.timeout,
            json={"username": username, "password": password, "provider": "db", "refresh": True},
        )
        if r.status_code != 200:
            raise SupersetAPIError("POST", "/api/v1/security/login", r.status_code, r.text)
        token = r.json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        r = self.session.get(f"{self.base_url}/api/v1/security/csrf_token/", timeout=self.timeout)
        if r.status_code != 200:
            raise SupersetAPIError("GET", "/api/v1/security/csrf_token/", r.status_code, r.text)
        self.session.headers["X-CSRFToken"] = r.json()["result"]
        self.session.headers["Referer"] = self.base_url
        self.username = username
        return self

    # ---- plumbing -----------------------------------------------------------------------------
    def request(self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        # No redirects: Superset answers a refused request (a CSRF error, a lost login) with one to a page
        # that then returns 200 - a failed import would look like success.
        kw.setdefault("allow_redirects", False)
        r = self.session.request(method, f"{self.base_url}{path}", timeout=self.timeout, **kw)
        if r.status_code not in ok:
            raise SupersetAPIError(method, path, r.status_code, r.text)
        if not r.content:
            return None
        try:
            return r.json()
        except ValueError:
            return r.text

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, payload: Any = None, **kw: Any) -> Any:
        return (
            self.request("POST", path, json=payload, **kw) if payload is not None else self.request("POST", path, **kw)
        )

    def put(self, path: str, payload: Any, **kw: Any) -> Any:
        return self.request("PUT", path, json=payload, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def list_all(
        self,
        resource: str,
        filters: list[tuple[str, str, Any]] | None = None,
        page_size: int = 100,
        columns: tuple[str, ...] = (),
    ) -> Iterator[dict]:
        page = 0
        while True:
            data = self.get(f"/api/v1/{resource}/", params={"q": rison_list(page, page_size, filters, columns)})
            rows = data.get("result", [])
            yield from rows
            if len(rows) < page_size:
                return
            page += 1

    # ---- domain helpers -----------------------------------------------------------------------
    def import_assets(self, bundle: bytes, passwords: dict[str, str] | None = None, sparse: bool = False) -> None:
        """`sparse`: the bundle may refer to assets Superset has but the bundle leaves out (by uuid)."""
        files = {"bundle": ("callsight_assets.zip", bundle, "application/zip")}
        data = {"passwords": json.dumps(passwords or {})}
        if sparse:
            data["sparse"] = "true"
        self.request("POST", "/api/v1/assets/import/", files=files, data=data)

    def chart_data(self, query_context: dict) -> dict:
        return self.post("/api/v1/chart/data", query_context)
