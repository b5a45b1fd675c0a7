"""The protocols other clients speak, next to the server's own `/predict`: MLflow's scoring
protocol (`mlflow_scoring`, a drop-in for `mlflow models serve`) and the Open Inference Protocol
v2 (`open_inference`, KServe / Triton / Seldon clients). Each parses its own wire format into
records and scores them through `rows.RowScorer`, the same validation and predictor as
`/predict/batch`."""
