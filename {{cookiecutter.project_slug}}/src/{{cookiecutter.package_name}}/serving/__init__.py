"""The model server. A request goes one way through it:

`routes/` or `protocols/` (the body decoded, then one call of the validator,
`inference/validation.py`, into a column batch) -> `scoring.py` (`ScoringService.score`: the
cache, the predictor of `inference/`, the prediction log, the drift window) -> back to the
route, which renders the task-typed result in its protocol's shape (`responses.py` for the
server's own routes).

`app.py` builds the FastAPI app, `model_manager.py` holds the served predictor (load, verify,
swap; loading itself is `inference/registry.py`), `serve.py` is the `serve` command. Nothing
here imports pandas or a training framework: the serve image has neither."""
