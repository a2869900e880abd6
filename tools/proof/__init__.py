"""What the proof harnesses (`make load`, `make chaos`, `make dast`) share.

They speak only the public contract (the generated `weather.v1` stubs, gRPC and gRPC-Web
on the gateway) and start the mesh only through `devmesh`'s launchers, so that a refactor
of the services cannot make a harness pass by accident.
"""
