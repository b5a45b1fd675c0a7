"""MLflow's basic-auth identities, created or reset to their secrets before the server starts.

Run by docker/mlflow-entrypoint.sh. The auth app creates `admin` once, on an empty user store,
and ignores its password afterwards; doing it here makes every secret authoritative at each
start (rotation: change the secret file, recreate the mlflow container).
"""

from __future__ import annotations

import os

from mlflow.server.auth.config import read_auth_config
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

# user -> (environment variable holding its password, is_admin)
USERS = {
    "training": ("MLFLOW_TRAINING_PASSWORD", False),
    "serving": ("MLFLOW_SERVING_PASSWORD", False),
}


def main() -> None:
    config = read_auth_config()
    store = SqlAlchemyStore()
    store.init_db(config.database_uri)
    users = {config.admin_username: ("MLFLOW_AUTH_ADMIN_PASSWORD", True), **USERS}
    for name, (variable, is_admin) in users.items():
        password = os.environ[variable]
        if store.has_user(name):
            store.update_user(name, password=password, is_admin=is_admin)
            print(f"mlflow-users: {name} updated")
        else:
            store.create_user(name, password, is_admin=is_admin)
            print(f"mlflow-users: {name} created")


if __name__ == "__main__":
    main()
