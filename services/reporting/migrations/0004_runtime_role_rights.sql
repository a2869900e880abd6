-- The runtime role (`weather_app`, migrations.RUNTIME_ROLE: what reporting serves as) reads
-- and writes rows of the tables the owner creates, and runs no DDL. The owner runs this file,
-- so the grants hold wherever the migrations run: the local runner creates the role, a
-- cluster's CloudNativePG declares it (a managed role), and neither grants table rights itself.
-- DELETE: the retention purge. The default privileges cover tables later migrations create.
GRANT USAGE ON SCHEMA public TO weather_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO weather_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO weather_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO weather_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO weather_app;
