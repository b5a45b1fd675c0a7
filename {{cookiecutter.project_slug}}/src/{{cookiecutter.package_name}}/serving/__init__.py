"""The model server. A request goes one way through it:

`routes/` (validation by the request models of `requests.py`, answers in the shape of
`responses.py`) -> `scoring.py` (the scoring service) -> `predictor.py` (the loaded registry
version) -> `cache.py` / `prediction_log.py` (optional parts).

`app.py` builds the FastAPI app, `model_manager.py` holds the served predictor (load, verify,
swap), `registry.py` loads a registered version, `serve.py` is the `serve` command.
Nothing here imports pandas or a training framework: the serve image has neither."""
