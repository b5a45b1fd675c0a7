"""The scoring core, below everything that scores: the server (`serving/`), `score`
(`batch_scoring.py`) and `evaluate` (`pipeline/evaluate.py`) all go through it.

`validation.py` (the schema's rules) turns any entry's input into a `batch.py: ColumnBatch`;
`registry.py` loads a registered version into a `predictor.py: Predictor`, which scores a batch
into a task-typed result (`results.py`). Nothing here imports pandas or a training framework
except the native-model path: the serve image has neither.
"""
