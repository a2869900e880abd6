"""`make load`: N concurrent clients through the gateway, as the UI uses it."""
