# The local mesh: nats-server, PostgreSQL, the services and Envoy on 127.0.0.1.
.PHONY: up

up: $(INSTALLED) ui ## start the whole mesh locally (builds the UI first when needed)
	$(BIN)/python -m devmesh up
