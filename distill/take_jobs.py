"""One HTTP generation request as a job: checked fields → take(s) → the bytes of an audio file.

The HTTP endpoint's replicas use these functions around the shared inference path
(:func:`distill.takes.produce` for blends, :func:`~distill.takes.produce_many` for the rest), so a
request gives the bytes ``distill generate`` writes for the same inputs: the same take, the same
export options, the same comment tag. No Ray, no web framework: the Ray layer moves jobs between
processes, the web layer turns :class:`JobProblem` into status codes.

A job is plain data (it crosses from the ingress to a replica): ``{"request": TakeRequest.to_dict(),
"export": {format, sample_rate, bit_depth, quality, title, artist, album}}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from urllib.parse import quote

from distill.export import ExportError, ExportOptions, default_extension, encode_bytes
from distill.latent_space import SliderError
from distill.loaded_model import LoadedModel, Take
from distill.spatial import SpatialError
from distill.takes import TakeRequest, produce_many, take_comment, take_stem

MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
EXPORT_FIELDS = ("format", "sample_rate", "bit_depth", "quality", "title", "artist", "album")


class JobProblem(ValueError):
    """A request the server refuses: HTTP ``status``, the request ``field`` at fault, and why."""

    def __init__(self, status: int, field: str | None, message: str):
        self.status, self.field, self.message = status, field, message
        super().__init__(message)

    def to_dict(self) -> dict:
        return {"status": self.status, "field": self.field, "error": self.message}


def problem_of(exc: ValueError) -> JobProblem:
    """The :class:`JobProblem` (422) of a refused value, with the field the error is about."""
    if isinstance(exc, JobProblem):
        return exc
    message = str(exc)
    if isinstance(exc, ExportError):
        field = exc.subject
    elif isinstance(exc, SpatialError):
        field = exc.field
    elif isinstance(exc, SliderError):
        field = "sliders"
    else:  # GenerationError and the blend checks begin with the field they are about
        first = message.split(" ", 1)[0].rstrip(":")
        field = first if first in ("duration", "seed", "evolution", "sliders", "loudness", "blend") else \
            ("blend" if "blend" in message or "weight" in message else None)
    return JobProblem(422, field, message)


@dataclass(frozen=True)
class Job:
    """A checked request: what to make and how to write it."""

    request: TakeRequest
    export: ExportOptions

    def to_dict(self) -> dict:
        return {"request": self.request.to_dict(),
                "export": {k: v for k, v in asdict(self.export).items() if k in EXPORT_FIELDS}}

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        """The job in ``data``, every field checked that needs no model; :class:`JobProblem` (422) names the field."""
        try:
            request = TakeRequest.from_dict(data["request"])
            export = ExportOptions(**data["export"])
            export.validate()
        except ValueError as exc:
            raise problem_of(exc) from None
        return cls(request, export)


def check_job(model: LoadedModel, job: Job, max_duration: float) -> None:
    """Check what needs the model (sliders, duration limit, evolution); :class:`JobProblem` (422) names the field."""
    try:
        model.check_request(job.request.duration, job.request.sliders, job.request.evolution, max_duration)
    except ValueError as exc:
        raise problem_of(exc) from None


def render_together(items: list[tuple[LoadedModel, Job]], max_duration: float) -> list[Take]:
    """The takes of several unblended jobs, possibly of different models and durations: each model's
    jobs are rendered together (same-length takes in one decoder batch), results in input order."""
    out: list[Take | None] = [None] * len(items)
    by_model: dict[int, list[int]] = {}
    for i, (model, _) in enumerate(items):
        by_model.setdefault(id(model), []).append(i)
    for members in by_model.values():
        model = items[members[0]][0]
        takes = produce_many(model, [items[i][1].request for i in members], max_duration)
        for i, take in zip(members, takes, strict=True):
            out[i] = take
    return out


@dataclass(frozen=True)
class EncodedTake:
    """A take as an audio file: its bytes, media type, file name and the headers that describe it."""

    body: bytes
    media_type: str
    filename: str
    headers: dict[str, str]


def encode_take(take: Take, export: ExportOptions) -> EncodedTake:
    """``take`` written as ``export`` asks, with the comment tag the CLI writes (so the bytes agree)."""
    options = replace(export, comment=take_comment(take))
    body = encode_bytes(take.audio, take.sample_rate, options)
    filename = take_stem(take) + default_extension(options.format)
    headers = {"X-Distill-Model": quote(take.model.get("name", ""), safe=""),
               "X-Distill-Model-Id": take.model.get("id") or "",
               "X-Distill-Seed": str(take.seed),
               "X-Distill-Duration": f"{take.duration:g}",
               "X-Distill-Sample-Rate": str(options.sample_rate),
               "X-Distill-Channels": str(take.channels),
               "Content-Disposition": f'attachment; filename="{filename}"'}
    if options.resolved_bit_depth:
        headers["X-Distill-Bit-Depth"] = options.resolved_bit_depth
    return EncodedTake(body, MEDIA_TYPES[options.format], filename, headers)

