"""The records and what they say: results.json, ranks, verdicts, the recommendation (pure)."""
