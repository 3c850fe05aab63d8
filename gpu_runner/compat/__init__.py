"""Put on the job's PYTHONPATH by the runner (not imported by the runner itself).

`sitecustomize` registers `anomalib.trainers`, which the user guide's sample imports but anomalib 2.7 lacks.
"""
