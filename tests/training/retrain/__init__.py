"""Tests of the retraining job: FHIR client, pull, store, registry, gate, scheduler."""
