"""Official benchmarks: reading a source dataset (`layouts`, from a directory or a safely extracted zip,
`archive`) and splitting it into the public part jobs see and the reference part only the scorer reads
(`split`). The models they write are in leadersboard/models/benchmarks.py.
"""
