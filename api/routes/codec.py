"""The codec server of the Temporal web UI and CLI (SPEC §8): payloads decrypted for those who
may read every incident, so officials read histories in the UI while Temporal keeps ciphertext.

Temporal's remote codec protocol: `POST /codec/decode` and `POST /codec/encode`, each taking
and answering `{"payloads": [{"metadata": {...}, "data": "<base64>"}]}`. The UI calls it from
the official's browser (CORS: only the origins of `YUQING_CODEC_ORIGINS`); the `temporal` CLI
with `--codec-endpoint http://…/codec --codec-auth "Bearer <token>"`.

Who may: decoding shows any incident's payloads, so it takes a token (`Authorization: Bearer`)
whose person sees every incident (the authorization file's `read.every_unit`); encoding takes
any known token. `./dev serve` alone sets `YUQING_CODEC_TRUST_LOCAL_UI`: its Temporal UI has no
login, so a request from this machine carrying that UI's Origin is taken as the UI's; the codec
is then as open as that UI already is, and no more (README, "Security").
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from api.deps import Services, services
from api.errors import ApiError
from yuqing.codec import PayloadKeyError
from yuqing.i18n import Said

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/codec", tags=["codec"])

# A page of the UI's history is at most a few hundred payloads; Temporal's own limit on one
# payload is 2 MB. Bigger bodies are refused before they are read into memory.
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_PAYLOADS = 1000
ALLOWED_HEADERS = "authorization, content-type, x-namespace"


class PayloadJson(BaseModel):
    """A payload in protobuf's JSON form: metadata values and data in base64."""

    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[PayloadJson] = Field(default_factory=list, max_length=MAX_PAYLOADS)


def _origin_allowed(request: Request, svc: Services) -> str | None:
    origin = request.headers.get("origin")
    return origin if origin and origin in svc.settings.codec_origins else None


def _cors(request: Request, svc: Services, response: Response) -> None:
    origin = _origin_allowed(request, svc)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _who(request: Request, svc: Services, *, decoding: bool) -> str:
    """Who asks, or ApiError 401/403 saying why not."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        person = svc.directory.authenticate(token.strip())
        if person is None:
            raise ApiError(401, Said("api.token_unknown"))
        if decoding and not svc.directory.read_scope(person).every_unit:
            raise ApiError(
                403,
                Said("api.may_not_decode", person=person.id),
            )
        return person.id
    if (
        svc.settings.codec_trust_local_ui
        and _origin_allowed(request, svc) is not None
        and _from_loopback(request)
    ):
        return f"the Temporal UI at {request.headers['origin']} (this machine)"
    raise ApiError(401, Said("api.no_token"))


async def _payloads(request: Request) -> list[Payload]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise ApiError(413, Said("api.codec_too_large", mib=MAX_BODY_BYTES // (1024 * 1024)))
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, Said("api.codec_too_large", mib=MAX_BODY_BYTES // (1024 * 1024)))
    try:
        body = CodecBody.model_validate_json(raw or b"{}")
    except ValueError as err:
        raise ApiError(422, Said("api.codec_not_payloads", cause=str(err))) from err
    found = []
    for index, item in enumerate(body.payloads):
        try:
            found.append(
                Payload(
                    metadata={
                        k: base64.b64decode(v, validate=True) for k, v in item.metadata.items()
                    },
                    data=base64.b64decode(item.data, validate=True),
                )
            )
        except (binascii.Error, ValueError) as err:
            raise ApiError(422, Said("api.codec_not_base64", index=index, cause=str(err))) from err
    return found


def _answer(payloads: list[Payload]) -> dict[str, object]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def _codec(svc: Services) -> PayloadCodec:
    codec = svc.workflows.client.data_converter.payload_codec
    if codec is None:
        raise ApiError(503, Said("api.no_codec"))
    return codec


Svc = Annotated[Services, Depends(services)]

# The protocol's body, written out: one schema, no references for the docs to resolve.
_PAYLOADS_SCHEMA = {
    "type": "object",
    "properties": {
        "payloads": {
            "type": "array",
            "maxItems": MAX_PAYLOADS,
            "items": {
                "type": "object",
                "properties": {
                    "metadata": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "format": "byte"},
                    },
                    "data": {"type": "string", "format": "byte"},
                },
            },
        }
    },
}
_BODY_DOC = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": _PAYLOADS_SCHEMA}}}
}


@router.post(
    "/decode",
    summary="Decrypt payloads (the Temporal UI's and CLI's codec server)",
    openapi_extra=_BODY_DOC,
)
async def decode(request: Request, response: Response, svc: Svc) -> dict[str, object]:
    _cors(request, svc, response)
    who = _who(request, svc, decoding=True)
    payloads = await _payloads(request)
    try:
        plain = await _codec(svc).decode(payloads)
    except PayloadKeyError as err:
        raise ApiError(422, str(err)) from err
    log.info(
        "payloads decoded",
        by=who,
        payloads=len(payloads),
        namespace=request.headers.get("x-namespace"),
    )
    return _answer(plain)


@router.post(
    "/encode",
    summary="Encrypt payloads (for `temporal … --codec-endpoint`)",
    openapi_extra=_BODY_DOC,
)
async def encode(request: Request, response: Response, svc: Svc) -> dict[str, object]:
    _cors(request, svc, response)
    _who(request, svc, decoding=False)
    return _answer(await _codec(svc).encode(await _payloads(request)))


@router.options("/{action}", include_in_schema=False)
async def preflight(action: str, request: Request, svc: Svc) -> Response:
    """CORS preflight from the UI's origin; other origins get no permission to read."""
    response = Response(status_code=204)
    if action in ("decode", "encode") and _origin_allowed(request, svc) is not None:
        _cors(request, svc, response)
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    return response
