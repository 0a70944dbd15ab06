import NebulaStore

/// The coordinator's numbered schema migrations, applied at start under an advisory lock.
/// Never edit a released migration: add a new one.
public enum CoordinatorSchema {
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "nodes, health, events, logs", sql: """
            CREATE TABLE nodes (
                node_id        text PRIMARY KEY,
                address        text NOT NULL DEFAULT '',
                state          text NOT NULL CHECK (state IN ('up', 'suspect', 'down', 'left')),
                drained        boolean NOT NULL DEFAULT false,
                drain_reason   text NOT NULL DEFAULT '',
                state_reason   text NOT NULL DEFAULT '',
                resources      jsonb NOT NULL,
                agent_version  text NOT NULL DEFAULT '',
                session        bigint NOT NULL DEFAULT 0,
                registered_at  timestamptz NOT NULL,
                last_seen_at   timestamptz NOT NULL,
                updated_at     timestamptz NOT NULL DEFAULT now()
            );

            -- One row per health sample of a node (time series).
            CREATE TABLE node_health (
                node_id               text NOT NULL,
                time                  timestamptz NOT NULL,
                seq                   bigint NOT NULL,
                cpu_percent           double precision NOT NULL,
                load1                 double precision NOT NULL,
                load5                 double precision NOT NULL,
                load15                double precision NOT NULL,
                memory_used_bytes     bigint NOT NULL,
                memory_total_bytes    bigint NOT NULL,
                disk_free_bytes       bigint NOT NULL,
                net_rx_bytes_per_sec  double precision NOT NULL,
                net_tx_bytes_per_sec  double precision NOT NULL,
                -- [{"index":0,"utilizationPercent":..,"memoryUsedBytes":..,"memoryTotalBytes":..}]
                gpus                  jsonb NOT NULL DEFAULT '[]'
            );
            CREATE INDEX node_health_node_time ON node_health (node_id, time DESC);

            CREATE TABLE node_events (
                id          bigserial PRIMARY KEY,
                node_id     text NOT NULL,
                time        timestamptz NOT NULL,
                kind        text NOT NULL,
                from_state  text,
                to_state    text NOT NULL,
                reason      text NOT NULL DEFAULT ''
            );
            CREATE INDEX node_events_node_time ON node_events (node_id, time DESC, id DESC);

            CREATE TABLE logs (
                id        bigserial PRIMARY KEY,
                time      timestamptz NOT NULL,
                node_id   text NOT NULL DEFAULT '',
                level     text NOT NULL,
                source    text NOT NULL DEFAULT '',
                message   text NOT NULL,
                metadata  jsonb NOT NULL DEFAULT '{}',
                seq       bigint NOT NULL DEFAULT 0
            );
            CREATE INDEX logs_node_id ON logs (node_id, id DESC);
            """),
        Migration(version: 2, name: "datasets and shards", sql: """
            CREATE TABLE datasets (
                id             text PRIMARY KEY,
                name           text NOT NULL,
                owner          text NOT NULL DEFAULT 'admin',
                state          text NOT NULL CHECK (state IN ('uploading', 'ingesting', 'ready', 'failed')),
                kind           text NOT NULL,
                source         text NOT NULL,
                source_bytes   bigint NOT NULL DEFAULT 0,
                stored_bytes   bigint NOT NULL DEFAULT 0,
                rows           bigint NOT NULL DEFAULT 0,
                columns        integer NOT NULL DEFAULT 0,
                error          text NOT NULL DEFAULT '',
                sha256         text NOT NULL DEFAULT '',
                path           text NOT NULL DEFAULT '',  -- the columnar file, relative to the data dir
                profile        jsonb,                     -- DatasetProfile
                report         jsonb,                     -- ingest report and archive layout
                created_at     timestamptz NOT NULL DEFAULT now(),
                updated_at     timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX datasets_created ON datasets (created_at DESC, id);

            -- One row per shard of a shard set (dataset, world size, seed, stratification column).
            CREATE TABLE dataset_shards (
                dataset_id   text NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
                shard_count  integer NOT NULL CHECK (shard_count >= 1),
                seed         bigint NOT NULL,
                stratify_by  text NOT NULL DEFAULT '',
                index        integer NOT NULL CHECK (index >= 0 AND index < shard_count),
                rows         bigint NOT NULL,
                bytes        bigint NOT NULL,
                sha256       text NOT NULL,
                path         text NOT NULL,               -- relative to the data dir
                created_at   timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (dataset_id, shard_count, seed, stratify_by, index)
            );
            CREATE INDEX dataset_shards_sha ON dataset_shards (dataset_id, sha256);
            """),
        Migration(version: 3, name: "jobs, job events, job metrics, checkpoints", sql: """
            CREATE TABLE jobs (
                id                  text PRIMARY KEY,
                seq                 bigserial,                -- submission order (FIFO within a priority)
                name                text NOT NULL,
                user_name           text NOT NULL DEFAULT 'admin',
                spec                jsonb NOT NULL,           -- JobSpec
                state               text NOT NULL CHECK (state IN ('pending', 'running', 'completing', 'completed',
                                                                   'failed', 'cancelled', 'node_fail', 'restarting')),
                reason              text NOT NULL DEFAULT '',
                task                text NOT NULL,
                plan                jsonb NOT NULL,           -- feature schema and classes, fixed at submission
                attempt             integer NOT NULL DEFAULT 0,
                restarts            integer NOT NULL DEFAULT 0,
                nodes               jsonb NOT NULL DEFAULT '[]',
                submitted_at        timestamptz NOT NULL DEFAULT now(),
                started_at          timestamptz,
                finished_at         timestamptz,
                metrics             jsonb,                    -- holdout metrics of the finished model
                model_checkpoint    text,
                samples_per_second  double precision NOT NULL DEFAULT 0,
                step                bigint NOT NULL DEFAULT 0,
                loss                double precision NOT NULL DEFAULT 0,
                updated_at          timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX jobs_state ON jobs (state);

            CREATE TABLE job_events (
                id          bigserial PRIMARY KEY,
                job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                time        timestamptz NOT NULL DEFAULT now(),
                attempt     integer NOT NULL DEFAULT 0,
                from_state  text,
                to_state    text NOT NULL,
                reason      text NOT NULL DEFAULT ''
            );
            CREATE INDEX job_events_job ON job_events (job_id, id);

            -- Step metrics of every rank (series, written in batches).
            CREATE TABLE job_metrics (
                job_id              text NOT NULL,
                attempt             integer NOT NULL,
                rank                integer NOT NULL,
                step                bigint NOT NULL,
                epoch               integer NOT NULL,
                loss                double precision NOT NULL,
                samples_per_second  double precision NOT NULL,
                allreduce_ms        double precision NOT NULL,
                samples             bigint NOT NULL,
                time                timestamptz NOT NULL
            );
            CREATE INDEX job_metrics_job ON job_metrics (job_id, attempt, rank, step);

            CREATE TABLE checkpoints (
                id          text PRIMARY KEY,
                job_id      text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
                attempt     integer NOT NULL,
                step        bigint NOT NULL,
                epoch       integer NOT NULL,
                world_size  integer NOT NULL,
                final       boolean NOT NULL DEFAULT false,
                bytes       bigint NOT NULL,
                sha256      text NOT NULL,
                path        text NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX checkpoints_job ON checkpoints (job_id, step DESC);
            """),
        Migration(version: 4, name: "users, sessions, refresh tokens, API request log", sql: """
            CREATE TABLE users (
                id             uuid PRIMARY KEY,
                email          text NOT NULL,
                name           text NOT NULL DEFAULT '',
                role           text NOT NULL CHECK (role IN ('admin', 'member', 'viewer')),
                password_hash  text NOT NULL,                -- bcrypt
                created_at     timestamptz NOT NULL DEFAULT now(),
                updated_at     timestamptz NOT NULL DEFAULT now()
            );
            CREATE UNIQUE INDEX users_email ON users (lower(email));

            -- A session is one sign-in: a family of refresh tokens, each exchanged once.
            CREATE TABLE sessions (
                id              uuid PRIMARY KEY,
                user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
                created_at      timestamptz NOT NULL DEFAULT now(),
                last_used_at    timestamptz NOT NULL DEFAULT now(),
                expires_at      timestamptz NOT NULL,
                revoked_at      timestamptz,
                revoked_reason  text NOT NULL DEFAULT '',
                user_agent      text NOT NULL DEFAULT '',
                ip              text NOT NULL DEFAULT ''
            );
            CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);
            CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

            CREATE TABLE refresh_tokens (
                token_hash  text PRIMARY KEY,                 -- SHA-256 of the token; the token is never stored
                session_id  uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
                issued_at   timestamptz NOT NULL DEFAULT now(),
                used_at     timestamptz
            );
            CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

            CREATE TABLE api_requests (
                time         timestamptz NOT NULL,
                request_id   text NOT NULL,
                method       text NOT NULL,
                route        text NOT NULL,                   -- the route template, e.g. /api/datasets/{id}
                status       integer NOT NULL,
                duration_ms  double precision NOT NULL,
                user_id      text NOT NULL DEFAULT '',
                ip           text NOT NULL DEFAULT ''
            );
            CREATE INDEX api_requests_time ON api_requests (time DESC);
            CREATE INDEX api_requests_route ON api_requests (route, time DESC);
            CREATE INDEX jobs_user ON jobs (user_name, seq DESC);
            CREATE INDEX datasets_owner ON datasets (owner, created_at DESC);
            """),
        Migration(version: 5, name: "builder runs", sql: """
            CREATE TABLE builder_runs (
                id           text PRIMARY KEY,
                owner        text NOT NULL,
                dataset_id   text NOT NULL,
                name         text NOT NULL DEFAULT '',
                state        text NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed')),
                progress     text NOT NULL DEFAULT '',
                error        text NOT NULL DEFAULT '',
                request      jsonb NOT NULL,            -- BuilderRequest
                result       jsonb,                     -- BuilderResult (task, leaderboard, report data)
                created_at   timestamptz NOT NULL DEFAULT now(),
                started_at   timestamptz,
                finished_at  timestamptz
            );
            CREATE INDEX builder_runs_owner ON builder_runs (owner, created_at DESC);
            """),
        Migration(version: 6, name: "builder candidate jobs", sql: """
            -- candidate name -> cluster job id (Note [Candidates as cluster jobs])
            ALTER TABLE builder_runs ADD COLUMN candidate_jobs jsonb NOT NULL DEFAULT '{}';
            """),
        Migration(version: 7, name: "cancelled builder runs", sql: """
            -- Note [Cancelling a builder run]
            ALTER TABLE builder_runs DROP CONSTRAINT builder_runs_state_check;
            ALTER TABLE builder_runs ADD CONSTRAINT builder_runs_state_check
                CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled'));
            """),
    ]
}
