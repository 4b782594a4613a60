"""Dose policies: DQN (``paper``, ``double``, ``conservative`` and variants), IQL, behaviour cloning, random forest, physician."""

from __future__ import annotations

from training.policies.base import Policy, TrainingHistory
from training.policies.config import (
    CONFIGS,
    BCConfig,
    DQNConfig,
    ForestConfig,
    IQLConfig,
    PolicyConfig,
    config_from_json,
    named_config,
)


def make_policy(config: PolicyConfig, n_features: int) -> Policy:
    """A fresh, untrained policy for a configuration (torch imported only for neural policies)."""
    if isinstance(config, DQNConfig):
        from training.policies.dqn import make_dqn

        return make_dqn(config, n_features)
    if isinstance(config, BCConfig):
        from training.policies.bc import BehaviourCloning

        return BehaviourCloning(config, n_features)
    if isinstance(config, ForestConfig):
        from training.policies.forest import RandomForestPolicy

        return RandomForestPolicy(config, n_features)
    if isinstance(config, IQLConfig):
        from training.policies.iql import IQL

        return IQL(config, n_features)
    raise TypeError(f"unknown configuration {config!r}")


__all__ = [
    "CONFIGS",
    "BCConfig",
    "DQNConfig",
    "ForestConfig",
    "IQLConfig",
    "Policy",
    "PolicyConfig",
    "TrainingHistory",
    "config_from_json",
    "make_policy",
    "named_config",
]
