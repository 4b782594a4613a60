"""FHIR R4 ↔ epidose: codes, units, dose normalisation, patient timelines, state vectors, emitted resources.

Mapping is pure: FHIR dicts in, typed values out; no I/O, no Flask, no torch.
"""
