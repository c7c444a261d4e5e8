"""Using a trained model: recommendations, item and user vectors, new (cold-start) items."""
