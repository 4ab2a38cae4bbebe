"""The registries of video towers and patch embeddings, keyed by the names a ModelSpec carries.

`ModelSpec.attention` names a registered video encoder and `ModelSpec.patching` a registered patch
embedding; methods set those names (and their own `options`) in `configure`, the build looks them up
here. A new attention type or patching scheme registers its class with one decorator, in its own
file, and everything that sizes a model (the cell checks, the estimate, the analytic memory model,
the FLOP count) asks the built module through the interface in models/tower.py, never its name.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from vfbench.errors import UserError, closest

C = TypeVar("C", bound=type)


class NamedRegistry(Generic[C]):
    """name -> class. Registering a name twice raises; looking up an unknown one raises with the
    closest registered names and the full list."""

    def __init__(self, what: str):
        self.what = what
        self._classes: dict[str, C] = {}

    def register(self, name: str) -> Callable[[C], C]:
        def decorate(cls: C) -> C:
            if not isinstance(name, str) or not name:
                raise TypeError(f"a {self.what} needs a non-empty string name, got {name!r}")
            if name in self._classes:
                raise ValueError(f"{self.what} {name!r} is already registered (by {self._classes[name].__qualname__})")
            self._classes[name] = cls
            cls.registered_name = name
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        """Remove a name (tests that register throwaway classes clean up with this)."""
        self._classes.pop(name, None)

    def get(self, name: str) -> C:
        _ensure_builtins()
        cls = self._classes.get(name)
        if cls is None:
            raise UserError(
                f"unknown {self.what} {name!r}{closest(name, self._classes)}; registered: {', '.join(self.names())}"
            )
        return cls

    def names(self) -> list[str]:
        _ensure_builtins()
        return sorted(self._classes)


ENCODERS: NamedRegistry = NamedRegistry("video encoder")
PATCHES: NamedRegistry = NamedRegistry("patch embedding")
register_encoder = ENCODERS.register
register_patch = PATCHES.register


def _ensure_builtins() -> None:
    """The built-in towers register on import of their modules (a lookup before that imports them)."""
    import vfbench.models.factorized  # noqa: F401
    import vfbench.models.frame  # noqa: F401
    import vfbench.models.patch  # noqa: F401
    import vfbench.models.tubevit  # noqa: F401
