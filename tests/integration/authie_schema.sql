-- The tables myxid's PostgreSQL tests run against (tests/integration/
-- test_pgsql.py): Authie's authie_sessions as a Rails app has it after
-- every migration (myxi-protocol.md section 5.1; PostgreSQL types, datetimes
-- as timestamp without time zone holding UTC), and the small application
-- schema of the article's example: users belong to projects, and a user may
-- follow the deployments of the projects they belong to.

CREATE TABLE authie_sessions (
    id bigserial PRIMARY KEY,
    token character varying(255),           -- Authie <= 2.x: the plain token
    browser_id character varying(255),
    user_id bigint,
    active boolean DEFAULT true,
    data text,
    expires_at timestamp without time zone, -- NULL: a transient session
    login_at timestamp without time zone,
    login_ip character varying(255),
    last_activity_at timestamp without time zone,
    last_activity_ip character varying(255),
    last_activity_path character varying(255),
    user_agent character varying(255),
    created_at timestamp without time zone,
    updated_at timestamp without time zone,
    user_type character varying(255),
    parent_id bigint,
    two_factored_at timestamp without time zone,
    two_factored_ip character varying(255),
    requests integer DEFAULT 0,
    password_seen_at timestamp without time zone,
    token_hash character varying(255),      -- Authie >= 3: SHA-256 hex of the token
    host character varying(255),
    skip_two_factor boolean DEFAULT false,
    login_ip_country character varying(255),
    two_factored_ip_country character varying(255),
    last_activity_ip_country character varying(255)
);
CREATE INDEX index_authie_sessions_on_token ON authie_sessions (token);
CREATE INDEX index_authie_sessions_on_browser_id ON authie_sessions (browser_id);
CREATE INDEX index_authie_sessions_on_user_id ON authie_sessions (user_id);
CREATE INDEX index_authie_sessions_on_token_hash ON authie_sessions (token_hash);

CREATE TABLE projects (
    id bigserial PRIMARY KEY,
    name character varying(255) NOT NULL
);

CREATE TABLE memberships (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL,
    project_id bigint NOT NULL REFERENCES projects (id),
    UNIQUE (user_id, project_id)
);

-- The routing key of the "deployment" exchange is a deployment's uuid. It is
-- a string column here, as in many Rails apps; with a column of type uuid
-- write "d.uuid::text = {routing_key}" so that a key that is not a UUID is a
-- denial rather than a query error (PolicyUnavailable).
CREATE TABLE deployments (
    id bigserial PRIMARY KEY,
    uuid character varying(36) NOT NULL UNIQUE,
    project_id bigint NOT NULL REFERENCES projects (id)
);
