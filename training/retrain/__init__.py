"""Scheduled retraining: pull new FHIR data, train a candidate, score it beside the champion, gate, record.

``settings`` (EPIDOSE_* of the job), ``client`` with ``auth`` and ``errors`` (the FHIR read client),
``resources`` (the raw resource store), ``pull``, ``gate`` (pure), ``records`` (run records),
``job`` (:func:`training.retrain.job.retrain_once`, the one job function), ``scheduler``.
"""
