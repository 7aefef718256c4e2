"""The operator services behind the CLI: `leo doctor`'s checks, `leo sd update`'s edit, and the
codec server. They use infra/, db/ and the domain; the CLI renders what they return."""
