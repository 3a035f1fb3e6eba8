"""The Ray Serve application a ``tuner export --to ray-serve`` config deploys: ``tuner.export.ray_app:app``.

One Serve replica is one tuner worker: it loads the model once — through the same spec, format
adapter, knobs and model options as the sweep (:meth:`tuner.runtime.Runtime.from_profile`), in the
replica itself (the ``inline`` way, with the profile's threads) — and serves batches that Serve's
``@serve.batch`` forms with the ``user_config`` the export derived (``max_batch_size``,
``batch_wait_timeout_s``; ``reconfigure`` applies a changed one without a restart). Replicas and
autoscaling are Serve's, from the config.

A request is JSON: ``{"input": item}`` (one item) or ``{"inputs": [...]}`` (several); the answer
is ``{"output": ...}`` or ``{"outputs": [...]}``, numpy values as lists. The builder takes the
config's ``args``: ``profile`` (the profile's path on the replicas' nodes) and, for a pickle-backed
model, ``allow_pickle: true`` (the consent is given again here, never read from the profile).

Imported only by Serve on the cluster (it needs ``ray[serve]``): the export itself never imports it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

__all__ = ["ProfiledModel", "app"]


def _jsonable(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None:
        return tolist()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


@serve.deployment
class ProfiledModel:
    """One replica: the profile's model, loaded once, run on the batches Serve forms."""

    def __init__(self, profile: str, allow_pickle: bool = False) -> None:
        from tuner.backends import names
        from tuner.runtime import Runtime

        in_caller = next(n for n in names(where="in_caller") if n not in names(where="pooled"))
        self.runtime = Runtime.from_profile(
            profile, allow_pickle=allow_pickle, backend=in_caller, workers=1, autoscale=None, max_pending=None
        )
        self.runtime.start()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Serve's user_config: the batch size and wait the export derived from the profile."""
        batched: Any = self.predict  # serve.batch's wrapper: its settings change at run time
        if "max_batch_size" in config:
            batched.set_max_batch_size(int(config["max_batch_size"]))
        if "batch_wait_timeout_s" in config:
            batched.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def predict(self, items: list[Any]) -> list[Any]:
        # The model call blocks: off the replica's event loop, one batch at a time.
        return await asyncio.to_thread(lambda: list(self.runtime.map(items)))

    async def __call__(self, request: Any) -> dict[str, Any]:
        body = await request.json()
        if "inputs" in body:
            outs = await asyncio.gather(*(self.predict(x) for x in body["inputs"]))
            return {"outputs": [_jsonable(o) for o in outs]}
        return {"output": _jsonable(await self.predict(body["input"]))}


def app(args: dict[str, Any]) -> Any:
    """The application builder ``import_path: tuner.export.ray_app:app`` names (args: profile, allow_pickle)."""
    deployment: Any = ProfiledModel  # serve.deployment made it a Deployment
    return deployment.bind(str(args["profile"]), bool(args.get("allow_pickle", False)))
