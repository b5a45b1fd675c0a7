"""The protocols other clients speak, next to the server's own `/predict`: MLflow's scoring
protocol (`mlflow_scoring`, a drop-in for `mlflow models serve`) and the Open Inference Protocol
v2 (`open_inference/`, KServe / Triton / Seldon clients). Each decodes its own wire format into
rows or columns and scores them through `inputs.ProtocolInput`: the one validator and
`ScoringService.score`, the path of `/predict`."""
