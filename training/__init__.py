"""Cohort simulator, dataset, DQN and baselines, evaluation, retraining job and model registry."""
