"""The paper's studies (Warm-N, side features, cold start, encoder sweeps) as recipes of runs."""
