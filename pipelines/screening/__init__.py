"""Nightly screening: a study date's exams scored through Triton, results and worklist."""
