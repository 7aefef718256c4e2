"""What the tests share: rows and models to build, helpers per layer, the sub-agents and gate
plugin the catalogue and settings point at (by module path, so keep these names stable)."""
