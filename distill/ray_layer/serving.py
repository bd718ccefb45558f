"""The generation endpoint on Ray Serve: an HTTP ingress and the replicas that decode.

Two deployments, one application (``APP_NAME``)::

    Gateway   FastAPI ingress (distill.http_api): validates, resolves model names to keys, draws seeds
       │      handle.options(multiplexed_model_id=key).generate.remote(job)
       ▼
    Generator  models by key in an LRU (@serve.multiplexed, ``max_models_per_replica``), loaded once
               from the library (folder or URI); concurrent requests decoded together (@serve.batch),
               then each take encoded with the CLI's export path.

Why two: the model a request wants is in its JSON body, and Serve routes a multiplexed request to a
replica that already holds the model only when the caller names the model in the handle's options;
the gateway reads the body and names it. Validation and encoding of replies stay off the replica
that decodes, and the gateway can scale apart from it (``serve/config.yaml``).

Learned (Ray 2.60): ``@serve.ingress()`` without an app defers building it to
``__serve_build_asgi_app__``, called in the replica after ``__init__``, so the app can be built
from the constructor's arguments. ``serve.multiplexed(max_num_models_per_replica=n)(fn)`` assigned
in ``__init__`` is recognised (Serve inspects instance attributes), which makes the LRU size a
setting. ``@serve.batch``'s size and wait are settable per instance (``set_max_batch_size``).
A batch handler that runs torch on the event loop blocks the replica (no new requests queue while
it decodes), so the decode runs in a worker thread and the next batch gathers meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from dataclasses import asdict, dataclass, fields

from ray import serve

from distill.http_api import ServeLimits, check_origins, create_api
from distill.model_catalog import ModelCatalog, load_by_key
from distill.take_jobs import EncodedTake, Job, JobProblem, check_job, encode_take, problem_of, render_together
from distill.takes import produce

APP_NAME = "distill"
GATEWAY, GENERATOR = "Gateway", "Generator"


@dataclass(frozen=True)
class ServeSettings:
    """Everything the application is built from (the ``args`` of ``serve/config.yaml``)."""

    library: str | None = None  # folder or URI; None: the settings' library
    models: tuple[str, ...] = ()  # offer only these (names or ids); empty: the whole library
    max_models_per_replica: int = 4  # LRU size of loaded models in one replica
    max_duration: float = 60.0  # seconds per request
    max_body_bytes: int = 64 * 1024
    batching: bool = True
    max_batch_size: int = 16
    batch_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    device: str | None = None  # auto|cpu|cuda…; None: the settings' device
    cors_origins: tuple[str, ...] = ()  # web pages whose scripts may call the API from a browser

    @classmethod
    def from_args(cls, args: dict | None) -> ServeSettings:
        """Settings from a plain mapping (YAML ``args``); unknown keys and bad values raise ``ValueError``."""
        args = dict(args or {})
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown setting; known: {', '.join(known)}")
        for name in ("models", "cors_origins"):
            if isinstance(args.get(name), str):
                args[name] = [args[name]]
            args[name] = tuple(args.get(name) or ())
        settings = cls(**args)
        settings.check()
        return settings

    def check(self) -> None:
        self.limits.check()
        check_origins(self.cors_origins)
        for name, low, high in (("max_models_per_replica", 1, 1000), ("max_batch_size", 1, 256)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
        if not isinstance(self.batch_wait_ms, int | float) or not 0 <= self.batch_wait_ms <= 1000:
            raise ValueError(f"batch_wait_ms must be from 0 to 1000, got {self.batch_wait_ms!r}")

    @property
    def limits(self) -> ServeLimits:
        return ServeLimits(self.max_duration, self.max_body_bytes)


@serve.deployment(name=GENERATOR, max_ongoing_requests=64)
class Generator:
    """Loads models by key (LRU) and renders takes, batching concurrent requests."""

    def __init__(self, settings: dict):
        self.settings = ServeSettings.from_args(settings)
        self.loads: dict[str, int] = {}

        async def load(key: str):  # a plain function: Serve keeps its LRU as an attribute of it (not of a method)
            return await self._load(key)

        self.get_model = serve.multiplexed(max_num_models_per_replica=self.settings.max_models_per_replica)(load)
        size = self.settings.max_batch_size if self.settings.batching else 1
        self._render_batch.set_max_batch_size(size)
        self._render_batch.set_batch_wait_timeout_s(self.settings.batch_wait_ms / 1000 if size > 1 else 0.0)
        self.replica = serve.get_replica_context().replica_id.unique_id

    async def _load(self, key: str):
        self.loads[key] = self.loads.get(key, 0) + 1
        return await asyncio.to_thread(load_by_key, self.settings.library, key, self.settings.device)

    async def generate(self, job_data: dict, blend_keys: list[str]) -> dict:
        """One request: ``{"ok": {body, media_type, headers}}`` or ``{"problem": JobProblem.to_dict()}``."""
        key = serve.get_multiplexed_model_id()
        loads = self.loads.get(key, 0)
        try:
            model = await self.get_model(key)
            hit = self.loads.get(key, 0) == loads
            blend_models = [await self.get_model(k) for k in blend_keys]
        except Exception as exc:  # a damaged or vanished file: the server's fault, said plainly, replica unharmed
            return {"problem": JobProblem(500, "model", f"the model could not be loaded: {exc}").to_dict()}
        try:
            job = Job.from_dict(job_data)
            check_job(model, job, self.settings.max_duration)
            if job.request.blend:
                take = await asyncio.to_thread(produce, model, job.request, blend_models,
                                               max_duration=self.settings.max_duration)
                batch = 1
            else:
                take, batch = await self._render_batch((model, job))
            encoded = await asyncio.to_thread(encode_take, take, job.export)
        except ValueError as exc:  # a JobProblem, or anything else the inference path refused: the request's fault
            return {"problem": problem_of(exc).to_dict()}
        headers = {**encoded.headers, "X-Distill-Batch": str(batch), "X-Distill-Replica": self.replica,
                   "X-Distill-Model-Cache": "hit" if hit else "miss"}
        return {"ok": {"body": encoded.body, "media_type": encoded.media_type, "headers": headers}}

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _render_batch(self, items: list[tuple]) -> list[tuple]:
        takes = await asyncio.to_thread(render_together, items, self.settings.max_duration)
        return [(take, len(items)) for take in takes]


class _HandleBackend:
    """:class:`distill.http_api.Backend` over the Generator deployment's handle."""

    def __init__(self, handle):
        self.handle = handle

    async def generate(self, key: str, blend_keys: list[str], job: Job):
        reply = await self.handle.options(multiplexed_model_id=key).generate.remote(job.to_dict(), blend_keys)
        if "problem" in reply:
            p = reply["problem"]
            raise JobProblem(p["status"], p["field"], p["error"])
        ok = reply["ok"]
        headers = dict(ok["headers"])
        extra = {k: headers.pop(k) for k in ("X-Distill-Batch", "X-Distill-Replica", "X-Distill-Model-Cache")}
        return EncodedTake(ok["body"], ok["media_type"], "", headers), extra


@serve.deployment(name=GATEWAY, max_ongoing_requests=256)
@serve.ingress()
class Gateway:
    """The HTTP ingress: builds :func:`distill.http_api.create_api` in the replica."""

    def __init__(self, generator, settings: dict):
        self.settings = ServeSettings.from_args(settings)
        self.catalog = ModelCatalog(self.settings.library, list(self.settings.models) or None)
        self.backend = _HandleBackend(generator)

    def __serve_build_asgi_app__(self):
        return create_api(self.catalog, self.backend, self.settings.limits, self.settings.cors_origins)


def build_app(args: dict | None = None):
    """The application ``serve run serve/config.yaml`` builds, from the config's ``args``.

    Serve calls an application builder with exactly one argument (it refuses a function with more
    parameters, even optional ones), so replicas and resources come from the config's
    ``deployments`` section; ``distill serve`` sets them from its flags through :func:`application`.
    """
    return application(ServeSettings.from_args(args))


def application(settings: ServeSettings, replicas: int = 1, replica_cpus: float = 1.0, gpus: float = 0.0):
    """The Gateway → Generator application for ``settings``, with ``replicas`` Generators of
    ``replica_cpus`` CPUs and ``gpus`` GPUs each. An unknown library or model fails here, in the
    caller, not later in a replica."""
    settings.check()
    ModelCatalog(settings.library, list(settings.models) or None)
    plain = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(settings).items()}
    generator = Generator.options(num_replicas=replicas,
                                  ray_actor_options={"num_cpus": replica_cpus, "num_gpus": gpus}).bind(plain)
    return Gateway.options(ray_actor_options={"num_cpus": 0}).bind(generator, plain)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def run_server(settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
               replica_cpus: float = 1.0, gpus: float = 0.0, num_cpus: int | None = None, on_ready=print) -> None:
    """Serve on an embedded local Ray (or ``RAY_ADDRESS``'s cluster) until SIGINT/SIGTERM, then shut down.

    ``on_ready(url)`` is called once the application answers. Raises ``ValueError`` for bad settings,
    an unknown library or model, or a port that is taken — before Ray starts.
    """
    import ray

    from distill.ray_layer import ensure_ray

    app = application(settings, replicas, replica_cpus, gpus)
    if not port_is_free(host, port):
        raise ValueError(f"{host}:{port} is in use; pick another --port")
    stop = threading.Event()
    stops = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in stops}
    try:
        ensure_ray(num_cpus=num_cpus)
        # The driver's Serve INFO lines say nothing our "serving at" line does not, and one of them
        # ("Connecting to existing Serve app … New http_options … will not be applied") misleads: the
        # options were applied by serve.start just before. Replica logs are unaffected.
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        # Serve's HTTP proxy binds where http_options say; Ray's own ports are separate (README).
        serve.start(http_options={"host": host, "port": port})
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        # Installed only now: ray.init sets its own SIGTERM handler, and Ctrl-C while starting should
        # interrupt the start (KeyboardInterrupt), not wait for it to finish.
        for s in stops:
            signal.signal(s, lambda *_: stop.set())
        on_ready(f"http://{host}:{port}")
        while not stop.wait(0.5):
            pass
    finally:
        try:  # a second Ctrl-C while stopping does not cut the shutdown short (our handler is still set)
            if ray.is_initialized():
                if os.environ.get("RAY_ADDRESS"):  # someone's cluster: take our application away, leave Serve
                    serve.delete(APP_NAME)
                else:
                    serve.shutdown()
                    ray.shutdown()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
