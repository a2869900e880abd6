"""The delivery pipeline's own tools: the secrets gate and the local Bitbucket runner."""
