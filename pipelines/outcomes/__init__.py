"""Realised performance: what happened to the screened exams, and how the served model did.

`truth` states the ground-truth rule, `imports` stores outcomes (`radflow labels import`),
`realised` joins them with the stored screening results (`radflow outcomes`, the monitoring
report's "Realised performance" section) and `bootstrap` gives the confidence intervals.
Shared layer: the CLI and the monitoring stage both read it.
"""
