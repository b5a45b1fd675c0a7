"""Data and prediction drift against the reference profile each registered version carries:
`profile` (build, save, load the reference), `stats` (PSI per feature, KS for the score),
`report` (the offline `drift-report` over the prediction log, where the project has one)."""
