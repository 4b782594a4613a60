"""Tests of the BECT cohort simulator."""
