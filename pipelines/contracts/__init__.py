"""Data contracts: the Great Expectations suites in data_contracts/, checked and enforced."""
