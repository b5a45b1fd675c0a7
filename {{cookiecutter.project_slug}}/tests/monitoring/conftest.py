"""The server fixtures (settings on the session's registered model, a copy of its store)."""

from ..serving.conftest import settings_for, store

__all__ = ["settings_for", "store"]
