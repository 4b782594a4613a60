"""Behaviour cloning: imitate the physicians' dose class with a softmax classifier.

Minimises the cross-entropy −log π(a_logged | s) over every visit of the training split (the last
visits too: their decisions are logged even though their outcomes are not), keeping the state with
the lowest validation cross-entropy (early stopping) when validation visits are given. The scores are
log-probabilities; the policy chooses the most probable allowed dose.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from training.dataset import Transitions
from training.policies.base import Policy, TrainingHistory, progress_bar
from training.policies.config import BCConfig
from training.policies.mlp import MLP, export_mlp


class BehaviourCloning(Policy):
    """A softmax classifier of the logged dose class."""

    artifact_kind = "mlp_logits"

    def __init__(self, config: BCConfig, n_features: int) -> None:
        self.config = config
        torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.network = MLP(n_features, config.hidden_sizes)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate,
                                          weight_decay=config.weight_decay)
        self.history = TrainingHistory()

    def fit(self, data: Transitions, *, progress: bool = False, validation: Transitions | None = None) -> TrainingHistory:
        config = self.config
        torch.set_num_threads(config.threads)
        if len(data) == 0:
            raise ValueError("no visits to learn from")
        states = torch.as_tensor(data.states)
        actions = torch.as_tensor(data.actions)
        generator = torch.Generator().manual_seed(config.seed)
        check = config.eval_every > 0 and validation is not None and len(validation) > 0
        best_loss, best_state = float("inf"), None
        if check and validation is not None:
            valid_states = torch.as_tensor(validation.states)
            valid_actions = torch.as_tensor(validation.actions)
            valid_masks = torch.as_tensor(validation.masks)
        window, count = 0.0, 0
        started = time.perf_counter()
        bar = progress_bar(config.steps, progress, f"train {config.name}")
        for step in range(1, config.steps + 1):
            batch = torch.randint(len(data), (config.batch_size,), generator=generator)
            loss = F.cross_entropy(self.network(states[batch]), actions[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            window += float(loss.detach())
            count += 1
            if step % config.log_every == 0 or step == config.steps:
                self.history.steps.append(self.history.total_steps + step)
                self.history.loss.append(window / count)
                window, count = 0.0, 0
                bar.update(step - bar.n)
            if check and (step % config.eval_every == 0 or step == config.steps):
                with torch.no_grad():
                    logits = self.network(valid_states)
                    if config.early_stopping_metric == "agreement":
                        chosen = logits.masked_fill(~valid_masks, -torch.inf).argmax(dim=1)
                        valid_loss = -float((chosen == valid_actions).float().mean())
                    else:
                        valid_loss = float(F.cross_entropy(logits, valid_actions))
                if valid_loss < best_loss:
                    best_loss, best_state = valid_loss, copy.deepcopy(self.network.state_dict())
                    self.history.best_step = self.history.total_steps + step
        bar.close()
        if best_state is not None:
            self.network.load_state_dict(best_state)  # early stopping: the state with the best validation loss
        self.history.seconds += time.perf_counter() - started
        self.history.total_steps += config.steps
        return self.history

    def scores(self, states: np.ndarray) -> np.ndarray:
        """log π(a | s) for the 12 classes."""
        with torch.no_grad():
            logits = self.network(torch.as_tensor(np.asarray(states, dtype=np.float32)))
            return torch.log_softmax(logits, dim=1).numpy().astype(np.float64)

    def probabilities(self, states: np.ndarray) -> np.ndarray:
        return np.exp(self.scores(states))

    def export_arrays(self) -> dict[str, np.ndarray]:
        return export_mlp(self.network)

    def torch_state(self) -> dict[str, Any]:
        return {"network": self.network.state_dict()}

    def load_torch_state(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
