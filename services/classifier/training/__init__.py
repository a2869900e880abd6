"""Training, evaluation and the graph pieces of the weather classifier (see MODEL_CARD.md)."""
