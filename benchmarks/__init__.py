"""Benchmarks: the CSDI-protocol harness (``tsdiff.benchmarks.csdi``, ``tsdiff benchmark``) and the
service and pipeline benchmark scripts. Results live in ``benchmarks/results/``."""
