"""Training and evaluation of the weather classifier (see MODEL_CARD.md).

Kept beside, not inside, the serving package so that no image ships it; it imports
`services.classifier` for the preprocessing and the custom layers the model file needs.
"""
