"""The application layer: assembles whole runs from the library's parts.

Each module is one thing a user runs (``scripts/`` are thin command-line wrappers around them):

* :mod:`rxlit.app.train`: ``scripts/train.py``: data module, model, callbacks, loggers, trainer,
  output folders, checkpoints, the run's summary;
* :mod:`rxlit.app.evaluate`: ``scripts/eval.py`` and :func:`rxlit.evaluate`: a checkpoint, foreign
  weights or a model in memory through the evaluation engine;
* :mod:`rxlit.app.study` / :mod:`rxlit.app.fanout`: ``scripts/study.py``: a study's models trained or
  reused (as one Hydra multirun when a launcher is given), then the study;
* :mod:`rxlit.app.cost`: ``python -m rxlit.app.cost``: what an ``explain`` config costs per epoch;
* :mod:`rxlit.app.configs`: where ``configs/`` is and how a config is composed.

Nothing below this package imports it (tests/test_layers.py).
"""
