"""Scoring by the platform: a job's predictions on an official benchmark against the reference it never sees.

- `predictions`: reading and checking `<output>/predictions` (`BadPredictions` says what to fix).
- `metrics`: exact image AUROC, F1-max, pixel AUROC and AUPRO.
- `pixels`: a category's masks and resized maps gathered for the pixel metrics.
- `bootstrap`: stratified resamples fixed by the reference and a seed; 95% intervals.
- `score`: all of it, into `leadersboard.models.scores.Scores`.
- `verdict`: what scoring does to a job record, and which jobs a score request (or a rescore) takes.

Runtime dependencies: numpy, scipy, Pillow (no torch, anomalib or scikit-learn: those are test references).
"""
