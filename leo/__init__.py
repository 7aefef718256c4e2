"""LEO handoffs as durable Temporal workflows over atomic PostgreSQL transitions."""
