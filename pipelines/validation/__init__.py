"""Data contracts: Great Expectations suites from data_contracts/, run against the manifest."""
