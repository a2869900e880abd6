"""`make dast`: hostile input through the gateway, and what the mesh answered to each."""
