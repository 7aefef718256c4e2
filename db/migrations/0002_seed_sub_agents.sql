-- LEO's sub-agent catalogue. Built-in rules answer what the recorded evidence can answer
-- (docs/sub-agents.md); the rest have no executor until a project configures one, and a
-- handoff that requires such an agent is blocked with an issue that says so.
INSERT INTO leo_sub_agents (code, name, priority, depends_on, timeout_seconds, executor_kind, executor_ref) VALUES
    ('SECURITY',   'Security Architect',       90, '{}',        30, 'builtin', '"SECURITY"'),
    ('TESTING',    'QA Engineering Director',  85, '{STORIES}', 30, 'builtin', '"TESTING"'),
    ('DATABASE',   'Principal Database Architect', 85, '{}',    30, 'builtin', '"DATABASE"'),
    ('VALIDATION', 'Principal Systems Analyst', 80, '{}',       30, 'builtin', '"VALIDATION"'),
    ('GITHUB',     'DevOps Platform Architect', 70, '{}',       30, 'builtin', '"GITHUB"'),
    ('STORIES',    'User Story Context Engineer', 60, '{}',     30, 'builtin', '"STORIES"'),
    ('RISK',       'Risk Assessment Sub-Agent', 60, '{}',       30, 'builtin', '"RISK"'),
    ('RETRO',      'Continuous Improvement Coach', 60, '{}',    30, 'builtin', '"RETRO"'),
    ('DOCMON',     'Information Architecture Lead', 50, '{}',   30, 'builtin', '"DOCMON"'),
    ('PERFORMANCE','Performance Engineering Lead', 80, '{}',    60, NULL, NULL),
    ('DESIGN',     'Senior Design Sub-Agent',  70, '{}',        60, NULL, NULL),
    ('UAT',        'UAT Test Executor',        70, '{}',        60, NULL, NULL),
    ('API',        'API Architecture Sub-Agent', 70, '{}',      60, NULL, NULL),
    ('REGRESSION', 'Regression Validator',     70, '{}',        60, NULL, NULL),
    ('DEPENDENCY', 'Dependency Management Specialist', 50, '{}', 60, NULL, NULL);
