"""The prediction-log database: the one place that builds the SQLAlchemy engine and owns the
table model. Alembic (`make migrate`) manages the schema; nothing here creates tables."""

from ..settings import normalize_url
from .engine import make_engine
from .tables import Base, PredictionRecord

__all__ = ["Base", "PredictionRecord", "make_engine", "normalize_url"]
