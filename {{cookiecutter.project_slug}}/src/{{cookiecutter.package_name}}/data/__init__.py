"""Example data (synthetic, seeded) and validated loading against `schema.py`."""
