"""Evaluation: published Table 1, honest agreement, off-policy value, simulator truth, report."""
