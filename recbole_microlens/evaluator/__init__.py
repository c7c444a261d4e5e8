"""Evaluation: full ranking with ties never favouring the target, RecBole's metrics, the
per-group breakdowns, and the result files a run writes."""
