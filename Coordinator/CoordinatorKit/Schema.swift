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
    ]
}
