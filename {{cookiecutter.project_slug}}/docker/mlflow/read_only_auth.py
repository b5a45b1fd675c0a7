"""MLflow's basic auth, plus identities that may only read (the `authorization_function`).

MLflow's permissions are per resource: READ on a registered model already stops `serving`
from registering versions or moving aliases, but creating a new experiment or registered model
needs no permission at all. Users listed under `[read_only] users` in the auth config are
therefore refused (403) every request that is not a read: any method but GET/HEAD, except the
POST routes that only search. Authentication itself is MLflow's own function, unchanged.
"""

from __future__ import annotations

import configparser
import functools

from flask import Response, request
from mlflow.server.auth import authenticate_request_basic_auth, make_forbidden_response
from mlflow.server.auth.config import _get_auth_config_path
from werkzeug.datastructures import Authorization

READ_METHODS = frozenset({"GET", "HEAD"})
# POST routes that read: searches (runs, logged models, experiments, ...).
READ_POST_SUFFIXES = ("/search",)


@functools.cache
def read_only_users() -> frozenset[str]:
    config = configparser.ConfigParser()
    config.read(_get_auth_config_path())
    return frozenset(config.get("read_only", "users", fallback="").split())


def authenticate() -> Authorization | Response:
    result = authenticate_request_basic_auth()
    if isinstance(result, Response) or result.username not in read_only_users():
        return result
    if request.method in READ_METHODS or request.path.rstrip("/").endswith(READ_POST_SUFFIXES):
        return result
    return make_forbidden_response()
