"""The HTTP API (FastAPI): request schema, strict validation, error mapping, routes. No Ray.

``create_api(catalog, backend, limits)`` builds the app. The Ray layer
(:mod:`distill.ray_layer.serving`) builds it inside its ingress replica with a backend that sends
jobs to the generating replicas; anything else implementing :class:`Backend` works the same.

Routes: ``POST /v1/generate`` (JSON → audio bytes), ``GET /v1/models``, ``GET /v1/models/{name}``,
``GET /healthz``; OpenAPI at ``/openapi.json``, docs at ``/docs``.

Strictness: every field is typed and bounded in the schema (wrong types are not coerced: ``"4"`` is
not a duration), unknown fields are refused, and what the schema cannot say (a slider the model
does not have, azimuth outside binaural output, a bit depth the format lacks) is checked before any
audio is made. Every refusal is ``{"status", "field", "error", "errors"}`` with the field named:
404 unknown model, 413 body over the limit, 422 anything else. A 500 means a bug, never a bad request.
"""

import logging
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from distill import __version__
from distill.generation import MIN_SECONDS
from distill.latent_space import SLIDER_RANGE
from distill.library import LibraryError
from distill.loaded_model import DEFAULT_EVOLUTION
from distill.loudness import TARGET_RANGE_LUFS
from distill.model_catalog import ModelCatalog, model_key
from distill.spatial import RANGES
from distill.take_jobs import MEDIA_TYPES, EncodedTake, Job, JobProblem

log = logging.getLogger("distill.http")

MAX_SEED = 2**63 - 1
MAX_BLEND = 4
HEADERS_DOC = {
    "X-Distill-Model": "the model's name (percent-encoded UTF-8)",
    "X-Distill-Model-Id": "the model's library id",
    "X-Distill-Seed": "the seed used (drawn at random when the request gave none)",
    "X-Distill-Duration": "seconds of audio",
    "X-Distill-Sample-Rate": "the file's sample rate in Hz",
    "X-Distill-Channels": "1 (mono) or 2 (stereo, binaural)",
    "X-Distill-Bit-Depth": "16, 24 or 32f (WAV, FLAC only)",
    "X-Distill-Batch": "how many requests the replica decoded together with this one",
    "X-Distill-Replica": "the replica that made the take",
    "X-Distill-Model-Cache": "hit: the model was already loaded in that replica; miss: it was loaded for this request",
}


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask: the longest take, the largest body."""

    max_duration: float = 60.0  # seconds
    max_body_bytes: int = 64 * 1024

    def check(self) -> None:
        if not (isinstance(self.max_duration, int | float) and MIN_SECONDS <= self.max_duration <= 600):
            raise ValueError(f"max_duration must be from {MIN_SECONDS} to 600 s, got {self.max_duration!r}")
        if not (isinstance(self.max_body_bytes, int) and 256 <= self.max_body_bytes <= 16 * 1024 * 1024):
            raise ValueError(f"max_body_bytes must be from 256 B to 16 MiB, got {self.max_body_bytes!r}")


ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+")  # scheme://host[:port], nothing after


def check_origins(origins) -> tuple[str, ...]:
    """Browser origins allowed to call the API (CORS): ``"*"`` or ``scheme://host[:port]`` each."""
    origins = tuple(origins or ())
    for origin in origins:
        if not isinstance(origin, str) or not (origin == "*" or ORIGIN.fullmatch(origin)):
            raise ValueError(f"cors_origins: {origin!r} is not an origin (http(s)://host[:port], no path, or *)")
    return origins


class Backend(Protocol):
    """Where takes are made: ``generate(key, blend_keys, job)`` → the encoded take, or a :class:`JobProblem`
    raised for what only the model can check (sliders)."""

    async def generate(self, key: str, blend_keys: list[str], job: Job) -> tuple[EncodedTake, dict[str, str]]:
        ...


class BlendItem(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=())
    model: str = Field(min_length=1, max_length=200, description="another model's name or id")
    weight: float = Field(gt=0, lt=1, allow_inf_nan=False, description="its share; the main model keeps 1 − Σ")


Position = Annotated[float, Field(ge=-SLIDER_RANGE, le=SLIDER_RANGE, allow_inf_nan=False)]


def request_schema(max_duration: float) -> type[BaseModel]:
    """The body of ``POST /v1/generate``, with this server's duration limit in the schema."""
    low_lufs, high_lufs = TARGET_RANGE_LUFS

    def number(default, low, high, text):
        return Field(default, ge=low, le=high, allow_inf_nan=False, description=text)

    class GenerateRequest(BaseModel):
        """What to generate and how to write it. Only ``model`` is required."""

        model_config = ConfigDict(extra="forbid", strict=True, protected_namespaces=(), title="GenerateRequest")
        model: str = Field(min_length=1, max_length=200, description="model name or id (GET /v1/models)")
        seed: int | None = Field(None, ge=0, le=MAX_SEED, description="same seed, same sound; omitted: random")
        duration: float = number(4.0, MIN_SECONDS, max_duration, f"seconds, {MIN_SECONDS:g}…{max_duration:g}")
        sliders: dict[Annotated[str, Field(min_length=1, max_length=100)], Position] = Field(
            default_factory=dict, max_length=64,
            description=f"slider label or 1-based index → position −{SLIDER_RANGE:g}…+{SLIDER_RANGE:g} (0 = median)")
        evolution: float = number(DEFAULT_EVOLUTION, 0.0, 1.0, "0 static … 1 wandering")
        format: Literal["wav", "flac", "ogg", "mp3"] = "wav"
        sample_rate: Literal[44100, 48000, 96000] = Field(48000, description="Hz (mp3: 44100 or 48000)")
        bit_depth: Literal["16", "24", "32f"] | None = Field(
            None, description="wav: 16, 24, 32f; flac: 16, 24 (default 24); none for ogg, mp3")
        quality: float | None = number(None, 0.0, 10.0, "ogg/mp3 quality 0…10 (default ogg 6, mp3 8)")
        spatial: Literal["mono", "stereo", "binaural"] = "mono"
        width: float | None = number(None, *RANGES["width"], "stereo/binaural spread 0…1 (default 0.5)")
        azimuth: float | None = number(None, *RANGES["azimuth"], "binaural direction in degrees, + right")
        elevation: float | None = number(None, *RANGES["elevation"], "binaural elevation in degrees, + up")
        depth: float | None = number(None, *RANGES["depth"], "room reflections 0…1 (stereo, binaural)")
        loudness: float | None = number(None, low_lufs, high_lufs, "integrated loudness target in LUFS")
        blend: list[BlendItem] = Field(default_factory=list, max_length=MAX_BLEND,
                                       description="other models mixed in, each with its weight")
        title: str | None = Field(None, max_length=200, description="title tag")
        artist: str | None = Field(None, max_length=200, description="artist tag")
        album: str | None = Field(None, max_length=200, description="album tag")

    return GenerateRequest


class ErrorBody(BaseModel):
    status: int
    field: str | None = Field(description="the request field at fault (dotted path), if one is")
    error: str
    errors: list[dict] = Field(default_factory=list, description="every problem found, each {field, error}")


class SliderInfo(BaseModel):
    index: int
    label: str
    descriptor: str | None
    explained_variance: float | None
    min: float
    max: float
    default: float


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    name: str
    id: str
    description: str
    tags: list[str]
    created: str
    sample_rate: int | None
    preset: str | None
    val_mrstft: float | None
    lineage: str | None
    sliders: list[SliderInfo]


class ModelDetails(ModelInfo):
    config: dict | None
    report: dict | None
    training: dict | None
    bytes: int


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    models: int
    max_duration: float
    max_body_bytes: int


def _error(status: int, field: str | None, message: str, errors: list[dict] | None = None) -> JSONResponse:
    body = {"status": status, "field": field, "error": message,
            "errors": errors if errors is not None else [{"field": field, "error": message}]}
    return JSONResponse(body, status_code=status)


def _field(loc) -> str | None:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) if parts else "body"


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, whether announced (Content-Length) or streamed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, int(declared))
        state = {"received": 0, "started": False, "over": False}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.limit:
                    state["over"] = True
                    return {"type": "http.disconnect"}  # the app stops reading; we answer below
            return message

        async def guarded_send(message):
            if state["over"]:
                return  # whatever the app says about a body it never got, the answer is 413
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._refuse(send, state["received"])

    async def _refuse(self, send, size: int) -> None:
        response = _error(413, "body", f"the request body is over {self.limit} bytes (got at least {size})")
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


def create_api(catalog: ModelCatalog, backend: Backend, limits: ServeLimits = ServeLimits(),
               cors_origins=()) -> FastAPI:
    """The FastAPI app of the generation endpoint (module docstring). ``cors_origins``: the web pages
    (origins) whose scripts may call it from a browser; none by default."""
    limits.check()
    cors_origins = check_origins(cors_origins)
    Schema = request_schema(limits.max_duration)
    app = FastAPI(title="distill", version=__version__,
                  description="Generate sound from models trained with distill. Errors are JSON "
                              "`{status, field, error, errors}`; see each route's responses.")
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    if cors_origins:  # added last, so it runs first: a refused body still carries the CORS headers
        # A browser script can read only the response headers it is told about: the seed, the model …
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"], expose_headers=[*HEADERS_DOC, "Content-Disposition"],
                           max_age=600)
    refusals = {404: {"model": ErrorBody, "description": "no such model on this server"},
                413: {"model": ErrorBody, "description": f"body over {limits.max_body_bytes} bytes"},
                422: {"model": ErrorBody, "description": "a field is missing, of the wrong type, out of "
                                                         "range or not possible with the others; `field` names it"}}

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        errors = [{"field": _field(e.get("loc", ())), "error": f"{_field(e.get('loc', ()))}: {e.get('msg', '')}"}
                  for e in exc.errors()]
        first = errors[0] if errors else {"field": "body", "error": "invalid request"}
        return _error(422, first["field"], first["error"], errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, None, str(exc.detail), [])

    @app.exception_handler(JobProblem)
    async def refused(_: Request, exc: JobProblem):
        return _error(exc.status, exc.field, exc.message)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):  # a bug or a broken replica, never a bad request
        log.exception("%s %s failed", request.method, request.url.path)
        return _error(500, None, f"the server failed to answer ({type(exc).__name__}); the request may be retried")

    @app.post("/v1/generate", response_class=Response, summary="Generate a take and return it as an audio file",
              responses={200: {"description": "the audio file",
                               "content": {t: {"schema": {"type": "string", "format": "binary"}}
                                           for t in MEDIA_TYPES.values()},
                               "headers": {k: {"description": v, "schema": {"type": "string"}}
                                           for k, v in HEADERS_DOC.items()}},
                         **refusals})
    async def generate(body: Schema) -> Response:  # type: ignore[valid-type]  # (no postponed annotations here:
        # FastAPI must see the class itself, which lives only in this function)
        entry = _find(catalog, body.model)
        blend_keys = [model_key(_find(catalog, item.model, f"blend.{i}.model")) for i, item in enumerate(body.blend)]
        job = Job.from_dict(_job_data(body))
        take, extra = await backend.generate(model_key(entry), blend_keys, job)
        return Response(take.body, media_type=take.media_type, headers={**take.headers, **extra})

    @app.get("/v1/models", response_model=ModelList, summary="The models this server offers, with their sliders")
    async def models() -> dict:
        return {"models": [catalog.summary(e) for e in catalog.entries()]}

    @app.get("/v1/models/{name}", response_model=ModelDetails, summary="One model: sliders, config, quality report",
             responses={404: refusals[404]})
    async def model(name: str) -> dict:
        return catalog.details(_find(catalog, name, "name"))

    @app.get("/healthz", response_model=Health, summary="Liveness: the server answers and can read its library")
    async def health() -> dict:
        return {"status": "ok", "version": __version__, "models": len(catalog.entries()),
                "max_duration": limits.max_duration, "max_body_bytes": limits.max_body_bytes}

    return app


def _find(catalog: ModelCatalog, ref: str, field: str = "model"):
    try:
        return catalog.find(ref)
    except LibraryError as exc:  # unknown or ambiguous: either way there is no such one model
        raise JobProblem(404, field, str(exc)) from None


def _job_data(body) -> dict:
    """The validated body as a :class:`Job`'s data; spatial settings only when given (so a width in mono is refused)."""
    spatial = {"mode": body.spatial}
    for name in ("width", "azimuth", "elevation", "depth"):
        value = getattr(body, name)
        if value is not None:
            if body.spatial == "mono" and name == "width":
                raise JobProblem(422, "width", "width: mono output has no width; use stereo or binaural")
            spatial[name] = value
    request = {"duration": body.duration, "seed": body.seed, "sliders": dict(body.sliders),
               "evolution": body.evolution, "spatial": spatial, "loudness": body.loudness,
               "blend": [{"model": item.model, "weight": item.weight} for item in body.blend]}
    if body.seed is None:  # drawn here, so the response can say which (the CLI draws from the same range)
        request["seed"] = secrets.randbelow(2**31)
    export = {"format": body.format, "sample_rate": body.sample_rate, "bit_depth": body.bit_depth,
              "quality": body.quality, "title": body.title, "artist": body.artist, "album": body.album}
    return {"request": request, "export": export}

