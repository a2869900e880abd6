"""Run the weather-mesh infrastructure on 127.0.0.1 without Docker.

The same launchers start NATS, PostgreSQL and Envoy for `make up` (through
`python -m devmesh up`) and for the integration-test fixtures, so what the tests
exercise is exactly what developers run.
"""
