-- Adopt track, 0004: an agent's world fingerprint command (as native migration 0013), with the
-- other executor settings LEO keeps per agent code of their catalogue.
ALTER TABLE leo.sub_agent_executors
    ADD COLUMN reuse_fingerprint text[]
        CHECK (reuse_fingerprint IS NULL OR cardinality(reuse_fingerprint) BETWEEN 1 AND 64);
