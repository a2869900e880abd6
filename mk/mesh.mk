# The local mesh: nats-server, PostgreSQL, the services and Envoy on 127.0.0.1.
.PHONY: up

up: $(INSTALLED) ## start the whole mesh locally
	$(BIN)/python -m devmesh up
