"""The HTTP routes, one module per group; each module has a `*_router(services, ...)` factory
and `app.create_app` includes them. A new group of routes: a module here, one
`app.include_router(...)` line in `app.py`. Routes stay thin: validation is the
validator's (`inference/validation.py`), the work is the scoring service's."""

from .admin import admin_router
from .operations import operations_router
from .predictions import prediction_router

__all__ = ["admin_router", "operations_router", "prediction_router"]
