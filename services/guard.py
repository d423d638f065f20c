"""ASGI middleware in front of ``/v1/*``: API keys, upload size, upload shape, error shape.

These checks must run before BentoML parses a request: it buffers the whole body,
would fetch a URL sent where a file is expected, and answers its own validation
failures in a shape of its own. Health (``/livez``, ``/readyz``) and ``/metrics`` pass
untouched, so probes and scrapers never need a key.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tsdiff.services.payloads import ServiceError
from tsdiff.services.settings import Settings

API_PREFIX = "/v1/"
FILE_ROUTES = frozenset({"/v1/impute", "/v1/forecast"})
FILE_FIELD = "data"
TABLE_FIELDS = ("future", "static")  # optional covariate tables, parquet files too
_URL = re.compile(r"^['\"]?[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_DRAIN_FACTOR = 8  # read (and drop) up to this many times the limit before answering 413
_DRAIN_SECONDS = 2.0  # ... but no longer than this: a client may declare more than it sends


class ApiGuard:
    """Pure ASGI middleware; added with ``TSDiffService.add_asgi_middleware(ApiGuard)``."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        self.app = app
        self.settings = settings or Settings.from_env()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            self._authorize(scope)
            if scope["method"] == "POST":
                body = await self._read_body(scope, receive)
                if body is None:  # the client went away
                    return
                await _check_content(scope, body)
                receive = _replay(body, receive)
        except ServiceError as e:
            headers = [(b"www-authenticate", b"Bearer")] if e.status == 401 else []
            await _send_json(send, e.status, {"error": e.error, "message": e.message}, headers)
            return
        await self.app(scope, receive, _uniform_errors(send))

    def _authorize(self, scope: Scope) -> None:
        keys = self.settings.api_keys
        if not keys:
            return
        auth = _header(scope, b"authorization")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ServiceError(
                401, "Unauthorized", "this service needs an 'Authorization: Bearer <key>' header"
            )
        given = token.strip().encode()
        if not any(hmac.compare_digest(given, k.encode()) for k in keys):
            raise ServiceError(401, "Unauthorized", "the API key is not valid")

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or a 413 as soon as it (or its declared length) is too large."""
        limit = self.settings.max_upload_bytes
        too_large = ServiceError(
            413,
            "PayloadTooLarge",
            f"the request body exceeds this service's limit of {self.settings.max_upload_mb:g} MB "
            f"(TSDIFF_MAX_UPLOAD_MB)",
        )
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            await _drain(receive, limit * _DRAIN_FACTOR)
            raise too_large
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await _drain(receive, limit * _DRAIN_FACTOR)
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _check_content(scope: Scope, body: bytes) -> None:
    """File routes take multipart with a real file in ``data``; JSON routes take JSON."""
    path = scope["path"].rstrip("/")
    ctype = _header(scope, b"content-type").split(";")[0].strip().lower()
    if path not in FILE_ROUTES:
        if ctype not in ("", "application/json"):
            raise ServiceError(
                415, "UnsupportedMediaType", f"{path} takes application/json, got {ctype!r}"
            )
        return
    if ctype != "multipart/form-data":
        raise ServiceError(
            415,
            "UnsupportedMediaType",
            f"{path} takes multipart/form-data: the parquet file in field '{FILE_FIELD}' and "
            f"each parameter as a form field of its own name; got {ctype or 'no Content-Type'!r}",
        )
    request = Request(scope, receive=_replay(body, None))
    try:
        form = await request.form()
    except Exception as e:  # starlette's MultiPartException, or a malformed body
        raise ServiceError(400, "BadMultipart", f"cannot parse the multipart body: {e}") from e
    try:
        parts = form.getlist(FILE_FIELD)
        if not parts:
            raise ServiceError(
                400, "MissingFile", f"multipart field '{FILE_FIELD}' (the parquet file) is missing"
            )
        if len(parts) > 1:
            raise ServiceError(
                400, "TooManyFiles", f"send one file in field '{FILE_FIELD}', got {len(parts)}"
            )
        part = parts[0]
        if isinstance(part, str):
            if _URL.match(part.strip()):
                raise ServiceError(
                    400,
                    "UrlNotAccepted",
                    f"field '{FILE_FIELD}' holds a URL ({part.strip()[:80]!r}); this service "
                    "does not fetch URLs: upload the parquet file itself",
                )
            raise ServiceError(
                400,
                "NotAFile",
                f"field '{FILE_FIELD}' must be a file upload (the parquet file), got a text value",
            )
        for key, value in form.multi_items():
            if key in TABLE_FIELDS:
                if not isinstance(value, UploadFile):
                    raise ServiceError(
                        400, "NotAFile", f"field {key!r} must be a file upload (a parquet table)"
                    )
                if len(form.getlist(key)) > 1:
                    raise ServiceError(400, "TooManyFiles", f"send one file in field {key!r}")
            elif key != FILE_FIELD and isinstance(value, UploadFile):
                raise ServiceError(
                    400, "UnexpectedFile", f"field {key!r} must be a plain form value, not a file"
                )
    finally:
        await form.close()


# --------------------------------------------------------------------------- ASGI helpers
def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _replay(body: bytes, receive: Receive | None) -> Receive:
    """A ``receive`` that yields the buffered body once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replay


async def _drain(receive: Receive, cap: int) -> None:
    """Read and drop the rest of a body, so the client can read our answer before we close.

    Bounded in bytes and in time: a client that declares 2 GB and sends a few bytes
    would otherwise hold the request open until it gave up, with no answer.
    """

    async def drain() -> None:
        seen = 0
        while seen <= cap:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            seen += len(message.get("body", b""))

    try:
        await asyncio.wait_for(drain(), _DRAIN_SECONDS)
    except asyncio.TimeoutError:
        pass


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _uniform_errors(send: Send) -> Callable[[Message], Awaitable[None]]:
    """Rewrite BentoML's own 4xx JSON bodies to ``{"error", "message"}`` like ours."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            status = message["status"]
            ctype = dict(message.get("headers", [])).get(b"content-type", b"")
            if 400 <= status < 500 and ctype.startswith(b"application/json"):
                start = message
                return
        elif message["type"] == "http.response.body" and start is not None:
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = _normalized(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


def _normalized(body: bytes) -> bytes:
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    if isinstance(payload, list) and len(payload) == 1 and isinstance(payload[0], dict):
        payload = {"error": "BadRequest", "message": str(payload[0].get("error", payload[0]))}
    elif isinstance(payload, dict) and "message" not in payload and "detail" in payload:
        detail = payload["detail"]
        if isinstance(detail, list):
            message = "; ".join(
                f"{'.'.join(map(str, d.get('loc', ()))) or 'body'}: {d.get('msg', d)}"
                if isinstance(d, dict)
                else str(d)
                for d in detail
            )
        else:
            message = str(detail)
        payload = {"error": "ValidationError", "message": message, "detail": detail}
    else:
        return body
    return json.dumps(payload).encode()
