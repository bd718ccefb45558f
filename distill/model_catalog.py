"""The models a server offers: a library (folder or storage URI), optionally limited to some of its models.

Used by the HTTP endpoint (and later the UI) to answer "which models are there" and to turn the
name a client sends into a library entry, and by the replicas that generate to load a model by
its :func:`model_key`. No Ray, no web framework.

Only library models are offered: a client cannot make the server open a file path or a URI of its
choosing (the CLI's ``distill generate path/to/model.distill`` has no HTTP equivalent on purpose).
The catalog is re-read at most every ``refresh_seconds`` (and at once when a name is not found), so
a model added to the library while the server runs is offered within seconds and a request never
waits for a listing of the storage.
"""

from __future__ import annotations

import threading
import time

from distill.latent_space import SLIDER_RANGE
from distill.library import Library, LibraryEntry, UnknownModel, sliders
from distill.loaded_model import LoadedModel


def model_key(entry: LibraryEntry) -> str:
    """The key a model is cached and routed under: its id and the start of its file's hash, so a model
    file replaced in the library (same id, new content) is loaded afresh, not served from a cache."""
    return f"{entry.id}@{entry.sha256[:16]}"


def load_by_key(library: str | None, key: str, device: str | None = None) -> LoadedModel:
    """The model ``key`` (:func:`model_key`) names, loaded on ``device`` (``None``: the settings' device)."""
    from distill.settings import load_settings

    model_id = key.split("@", 1)[0]
    lib = Library.open(library)
    entry = lib.resolve(model_id)
    return LoadedModel(lib.read_model(entry), load_settings(device=device).device, entry_id=entry.id)


class ModelCatalog:
    """The library at ``library`` (``None``: the settings' library), limited to ``only`` (names or ids) if given."""

    def __init__(self, library: str | None = None, only: list[str] | None = None, refresh_seconds: float = 5.0):
        self.library = Library.open(library)
        self.location = library
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._entries: list[LibraryEntry] = []
        self._read_at = -float("inf")
        self._meta: dict[str, dict] = {}  # model_key → the model file's meta (read once per file)
        self.only: set[str] | None = None
        if only:  # resolved now: a name that is not in the library is an error at start, not a 404 later
            entries = self.library.entries()
            self.only = {self.library.resolve(ref, entries).id for ref in only}

    def entries(self, fresh: bool = False) -> list[LibraryEntry]:
        """The offered models, newest first (re-read when older than ``refresh_seconds`` or ``fresh``)."""
        with self._lock:
            if fresh or time.monotonic() - self._read_at > self.refresh_seconds:
                entries = [e for e in self.library.entries() if self.only is None or e.id in self.only]
                self._entries = sorted(entries, key=lambda e: (e.created, e.added), reverse=True)
                self._read_at = time.monotonic()
            return list(self._entries)

    def find(self, ref: str) -> LibraryEntry:
        """The offered model ``ref`` names (id, name, id prefix); :class:`UnknownModel` otherwise,
        and for anything that looks like a path or URI."""
        if not isinstance(ref, str) or not ref.strip() or any(c in ref for c in "/\\") or ref.endswith(".distill"):
            raise UnknownModel(f"no model {ref!r} on this server "
                               "(give a model's name or id; GET /v1/models lists them)")
        try:
            return self.library.resolve(ref, self.entries())
        except UnknownModel:
            return self.library.resolve(ref, self.entries(fresh=True))  # added since the last read?

    def summary(self, entry: LibraryEntry) -> dict:
        """What ``GET /v1/models`` says of a model: name, id, description, tags, sample rate and its sliders."""
        summary = entry.summary or {}
        return {"name": entry.name, "id": entry.id, "description": entry.description, "tags": list(entry.tags),
                "created": entry.created, "sample_rate": summary.get("sample_rate"), "preset": summary.get("preset"),
                "val_mrstft": summary.get("val_mrstft"), "lineage": summary.get("lineage"),
                "sliders": self.sliders(entry)}

    def meta(self, entry: LibraryEntry) -> dict:
        """The model file's meta (config, report, training, analysis), read once per model file."""
        key = model_key(entry)
        if key not in self._meta:
            self._meta[key] = self.library.info(entry.id)["meta"]
        return self._meta[key]

    def sliders(self, entry: LibraryEntry) -> list[dict]:
        """The model's sliders: index, label, descriptor, explained variance, and the range a request may set."""
        meta = self.meta(entry)
        return [{"index": s["index"], "label": s["label"], "descriptor": s["descriptor"],
                 "explained_variance": s["explained_variance"], "min": -SLIDER_RANGE, "max": SLIDER_RANGE,
                 "default": 0.0} for s in sliders(meta.get("analysis"))]

    def details(self, entry: LibraryEntry) -> dict:
        """What ``GET /v1/models/{name}`` says: the summary plus the training config, quality report and
        training facts."""
        meta = self.meta(entry)
        return {**self.summary(entry), "config": meta.get("config"), "report": meta.get("report"),
                "training": meta.get("training"), "bytes": entry.bytes}
