"""`bench tune`: Optuna searches over a method's hyperparameters, each proposal a bench trial trained by the same
path as `bench run` (records, checkpoints, resume), pruned on its intermediate FID, recorded in MLflow under one
parent run per study. space.py: search spaces; study.py: storages, the objective, the worker loop; export.py: the
best configuration as a runnable suite; cli.py: the command."""
