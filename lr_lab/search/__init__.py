"""The search's pure parts: the race's candidates, its rungs, its smoothing (numbers in, out)."""
