-- The tables myxid's MySQL plugin tests run against (MariaDB 10.11):
-- Authie's session table as a Rails app on MySQL has it, and the small
-- application of the article, whose `deployment` exchange lets a user
-- subscribe to the deployments of the projects they belong to.

-- Authie's authie_sessions, with every migration up to Authie 4.1
-- (../shared/reference/myxi-protocol.md, section 5.1), in the physical
-- types Rails >= 7 gives it on MySQL: VARCHAR(255), TEXT, TINYINT(1),
-- BIGINT, DATETIME(6), all times in UTC.
CREATE TABLE authie_sessions (
  id BIGINT NOT NULL AUTO_INCREMENT,
  token VARCHAR(255) NULL,                 -- Authie <= 2: the plain token
  browser_id VARCHAR(255) NULL,
  user_id BIGINT NULL,
  active TINYINT(1) NULL DEFAULT 1,
  data TEXT NULL,
  expires_at DATETIME(6) NULL,             -- NULL: a transient session
  login_at DATETIME(6) NULL,
  login_ip VARCHAR(255) NULL,
  last_activity_at DATETIME(6) NULL,
  last_activity_ip VARCHAR(255) NULL,
  last_activity_path VARCHAR(255) NULL,
  user_agent VARCHAR(255) NULL,
  created_at DATETIME(6) NULL,
  updated_at DATETIME(6) NULL,
  user_type VARCHAR(255) NULL,
  parent_id BIGINT NULL,
  two_factored_at DATETIME(6) NULL,
  two_factored_ip VARCHAR(255) NULL,
  requests INT NULL DEFAULT 0,
  password_seen_at DATETIME(6) NULL,
  token_hash VARCHAR(255) NULL,            -- Authie >= 3: SHA-256 hex
  host VARCHAR(255) NULL,
  skip_two_factor TINYINT(1) NULL DEFAULT 0,
  login_ip_country VARCHAR(255) NULL,
  two_factored_ip_country VARCHAR(255) NULL,
  last_activity_ip_country VARCHAR(255) NULL,
  PRIMARY KEY (id),
  KEY index_authie_sessions_on_token (token(10)),
  KEY index_authie_sessions_on_browser_id (browser_id(10)),
  KEY index_authie_sessions_on_user_id (user_id),
  KEY index_authie_sessions_on_token_hash (token_hash(10))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The application. Deployment UUIDs are routing keys, so they are compared
-- byte for byte: under the default collation (case-insensitive, trailing
-- spaces ignored) the policy would also allow "ABC..." or "abc... " for
-- "abc...", keys that are not the deployment's. utf8mb4_nopad_bin is
-- MariaDB's exact collation (MySQL 8: utf8mb4_0900_bin); an ascii column
-- would not do: comparing it with a non-ASCII key is an error (1267), not
-- a mismatch.
CREATE TABLE projects (
  id BIGINT NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE memberships (
  id BIGINT NOT NULL AUTO_INCREMENT,
  user_id BIGINT NOT NULL,
  project_id BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY index_memberships_on_user_id_and_project_id (user_id, project_id),
  KEY index_memberships_on_project_id (project_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE deployments (
  id BIGINT NOT NULL AUTO_INCREMENT,
  uuid VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL,
  project_id BIGINT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY index_deployments_on_uuid (uuid),
  KEY index_deployments_on_project_id (project_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
