"""The model server: FastAPI app (`app.py`), model loading (`model.py`), request schema
(`features.py`), routes (`routes.py`), metrics, and the optional Redis cache and prediction log.
Nothing here imports pandas or a training framework: the serve image has neither."""
