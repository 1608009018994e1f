"""Training labels from what the hospital wrote: BI-RADS in reports, pathology outcomes.

`birads` reads per-breast categories from report text, `density` the ACR breast density
(A-D) the report states, `ris` reads a RIS CSV export of reports, `pathology` reads outcome
files and merges them with the BI-RADS labels, with the provenance of every label.
"""
