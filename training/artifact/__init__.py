"""The model artifact: ``save`` (a trained policy → a model folder, torch), ``check`` (what a folder must pass
before it serves), ``registry`` (versioned folders and the ``current`` pointer). Loading for serving,
numpy only, is :mod:`training.inference`.
"""
