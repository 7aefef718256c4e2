"""Gates: schema, registry, SD-type policy and scoring."""
