# The local mesh: nats-server, PostgreSQL, the services and Envoy on 127.0.0.1.
.PHONY: up token

ROLE ?= viewer
SUB ?= $(USER)
MINUTES ?= 60

up: $(INSTALLED) ui ## start the whole mesh locally (builds the UI first when needed)
	$(BIN)/python -m devmesh up

token: $(INSTALLED) ## print a short-lived token for the local mesh: make token ROLE=viewer|operator SUB=alice [MINUTES=60]
	@$(BIN)/python -m devmesh token --role '$(ROLE)' --subject '$(SUB)' --minutes '$(MINUTES)'
