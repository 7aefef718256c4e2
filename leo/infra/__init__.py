"""What every layer uses: settings, the Temporal client connection, metrics, telemetry, the
payload codec and converter, and failures. Imports only the domain."""
