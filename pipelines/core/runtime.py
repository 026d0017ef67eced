"""Runtime: what a pipeline call needs besides its inputs: the model cache, the catalog, the device
and where outputs go. The app makes one and shares it; a script gets a private one by default."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .cache import ModelCache
from .catalog import Catalog
from .settings import AppConfig


@dataclass
class Runtime:
    cache: ModelCache
    catalog: Catalog
    outputs_dir: Path
    device_preference: str = "auto"
    allow_pickle: bool = False  # pickled .ckpt weights may load (they can run code)
    _device: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: AppConfig, cache: ModelCache | None = None, *, strict: bool = False) -> "Runtime":
        """``strict``: models are named by catalog names only (the studio's UI and API; see Catalog)."""
        budget = int(config.memory_budget_gb * 2**30) if config.memory_budget_gb else None
        catalog = Catalog(config.models_dir, strict=strict, follow_outside_links=config.follow_outside_symlinks)
        return cls(cache=cache or ModelCache(budget_bytes=budget, device=config.device),
                   catalog=catalog, outputs_dir=config.outputs_dir,
                   device_preference=config.device, allow_pickle=config.allow_pickle)

    @classmethod
    def default(cls) -> "Runtime":
        """For scripts and ``python -m pipelines.X``: AIGC_* environment variables, else defaults."""
        from .settings import parse_args

        return cls.from_config(parse_args([]))

    @property
    def device(self) -> str:
        """The torch device string (resolved on first use, so importing costs nothing)."""
        if self._device is None:
            from .devices import resolve_device

            self._device = resolve_device(self.device_preference)
        return self._device

    def dtype(self):
        from .devices import default_dtype

        return default_dtype(self.device)
