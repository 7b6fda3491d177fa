//! The ledger's schema, as the list of migrations that builds it.
//!
//! Migrations are only ever appended, never edited: `PRAGMA user_version` says how many
//! have run, so a ledger written by any earlier tallyman is brought up to date in place,
//! and one written by a newer tallyman is refused rather than misread.

/// Schema migrations, applied in order. Append only.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        files_done INTEGER NOT NULL DEFAULT 0,
        files_review INTEGER NOT NULL DEFAULT 0,
        error TEXT
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 1,
        name TEXT NOT NULL,
        source_path TEXT NOT NULL,
        work_path TEXT,
        size INTEGER NOT NULL,
        format TEXT,
        policy TEXT,
        state TEXT NOT NULL,
        outcome TEXT,
        committed_seq INTEGER NOT NULL DEFAULT 0,
        committed_lines INTEGER NOT NULL DEFAULT 0,
        next_chunk INTEGER NOT NULL DEFAULT 0,
        lines_applied INTEGER NOT NULL DEFAULT 0,
        lines_rejected INTEGER NOT NULL DEFAULT 0,
        lines_duplicate INTEGER NOT NULL DEFAULT 0,
        lines_skipped INTEGER NOT NULL DEFAULT 0,
        units_applied INTEGER NOT NULL DEFAULT 0,
        units_rejected INTEGER NOT NULL DEFAULT 0,
        units_duplicate INTEGER NOT NULL DEFAULT 0,
        error_rule TEXT,
        error_message TEXT,
        error_position TEXT,
        run_id INTEGER,
        claimed_at TEXT NOT NULL,
        finished_at TEXT,
        final_path TEXT,
        report_path TEXT,
        UNIQUE (fingerprint, attempt)
    );
    CREATE INDEX files_run ON files(run_id);
    CREATE TABLE lines (
        file_id INTEGER NOT NULL,
        ordinal INTEGER NOT NULL,
        unit_seq INTEGER NOT NULL,
        line INTEGER NOT NULL,
        byte INTEGER NOT NULL,
        record INTEGER NOT NULL,
        locator TEXT,
        status TEXT NOT NULL,
        key TEXT,
        rule TEXT,
        field TEXT,
        value TEXT,
        message TEXT,
        raw TEXT,
        PRIMARY KEY (file_id, ordinal)
    ) WITHOUT ROWID;
    CREATE TABLE units (
        file_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        label TEXT NOT NULL,
        status TEXT NOT NULL,
        key TEXT,
        first_ordinal INTEGER NOT NULL,
        line_count INTEGER NOT NULL,
        reasons TEXT,
        detail TEXT,
        tolerated TEXT,
        PRIMARY KEY (file_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE keys (
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        file_id INTEGER NOT NULL,
        unit_seq INTEGER NOT NULL,
        PRIMARY KEY (entity, key)
    ) WITHOUT ROWID;
    CREATE INDEX keys_file ON keys(file_id);
    CREATE TABLE chunks (
        file_id INTEGER NOT NULL,
        chunk INTEGER NOT NULL,
        entity TEXT NOT NULL,
        staged_path TEXT NOT NULL,
        outbox_path TEXT NOT NULL,
        records INTEGER NOT NULL,
        PRIMARY KEY (file_id, chunk, entity)
    ) WITHOUT ROWID;
    CREATE TABLE control_numbers (
        partner TEXT NOT NULL,
        kind TEXT NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (partner, kind)
    ) WITHOUT ROWID;
    CREATE TABLE acks (
        id INTEGER PRIMARY KEY,
        file_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        partner TEXT NOT NULL,
        control_no INTEGER,
        file_name TEXT NOT NULL,
        content BLOB NOT NULL
    );
    CREATE INDEX acks_file ON acks(file_id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER,
        at TEXT NOT NULL,
        level TEXT NOT NULL,
        file_name TEXT,
        fingerprint TEXT,
        message TEXT NOT NULL
    );
    "#,
    // 2: starts without progress, to set aside files a process keeps dying on.
    r#"
    ALTER TABLE files ADD COLUMN stalled_starts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN last_start_seq INTEGER;
    "#,
    // 3: hardening. `stalled_starts`/`last_start_seq` from 2 are reused with a narrower
    // meaning: deaths of the process at the same place in the file (`last_start_seq` is
    // that place), counted only when reading had reached new material (`inflight_seq`).
    r#"
    ALTER TABLE files ADD COLUMN raw_name BLOB;
    ALTER TABLE files ADD COLUMN work_mtime_ns INTEGER;
    ALTER TABLE files ADD COLUMN inflight_seq INTEGER;
    ALTER TABLE files ADD COLUMN hold_reason TEXT;
    ALTER TABLE files ADD COLUMN hold_kind TEXT;
    ALTER TABLE files ADD COLUMN released INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN review_rule TEXT;
    ALTER TABLE files ADD COLUMN review_message TEXT;
    ALTER TABLE files ADD COLUMN lines_unmapped INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN units_unmapped INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX files_state ON files(state);
    ALTER TABLE chunks ADD COLUMN first_seq INTEGER;
    ALTER TABLE chunks ADD COLUMN end_seq INTEGER;
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: record versions and their delivery to targets. Business keys of records move
    // from `keys` (which keeps only claims) to `versions`, whose content hash is unknown
    // ('') for keys applied before.
    r#"
    CREATE TABLE versions (
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        hash TEXT NOT NULL,
        data TEXT,
        source TEXT,
        file_id INTEGER NOT NULL,
        unit_seq INTEGER NOT NULL,
        ordinal INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        PRIMARY KEY (entity, key, version)
    ) WITHOUT ROWID;
    CREATE INDEX versions_file ON versions(file_id, unit_seq);
    INSERT INTO versions(entity, key, version, hash, file_id, unit_seq, created_at)
        SELECT entity, key, 1, '', file_id, unit_seq, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
        FROM keys WHERE entity != 'claim';
    DELETE FROM keys WHERE entity != 'claim';
    ALTER TABLE files ADD COLUMN lines_unchanged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE files ADD COLUMN units_unchanged INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        version INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at TEXT NOT NULL,
        ambiguous INTEGER NOT NULL DEFAULT 0,
        replay INTEGER NOT NULL DEFAULT 0,
        claimed_by TEXT,
        file_id INTEGER NOT NULL,
        settled_at TEXT,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        last_status INTEGER,
        last_error TEXT,
        UNIQUE (target, entity, key, version)
    );
    CREATE INDEX deliveries_due ON deliveries(target, state, next_at);
    CREATE INDEX deliveries_file ON deliveries(file_id);
    CREATE TABLE attempts (
        delivery_id INTEGER NOT NULL,
        n INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        operation TEXT NOT NULL,
        status INTEGER,
        outcome TEXT,
        latency_ms INTEGER,
        response TEXT,
        PRIMARY KEY (delivery_id, n)
    ) WITHOUT ROWID;
    CREATE TABLE target_refs (
        target TEXT NOT NULL,
        entity TEXT NOT NULL,
        key TEXT NOT NULL,
        remote_id TEXT,
        version INTEGER NOT NULL,
        PRIMARY KEY (target, entity, key)
    ) WITHOUT ROWID;
    CREATE TABLE target_state (
        target TEXT PRIMARY KEY,
        blocked_reason TEXT,
        blocked_at TEXT
    ) WITHOUT ROWID;
    "#,
    // 5: review: the audit trail, resolved rejects, corrections linked to their originals,
    // reconciliation runs, and samples of the dashboard's figures over time.
    r#"
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        reason TEXT,
        subject TEXT,
        detail TEXT
    );
    CREATE TABLE resolutions (
        file_id INTEGER NOT NULL,
        unit_seq INTEGER NOT NULL,
        resolved_at TEXT NOT NULL,
        how TEXT NOT NULL,
        by_file_id INTEGER,
        actor TEXT,
        note TEXT,
        PRIMARY KEY (file_id, unit_seq)
    ) WITHOUT ROWID;
    ALTER TABLE files ADD COLUMN correction_of INTEGER;
    ALTER TABLE files ADD COLUMN corrections_path TEXT;
    CREATE INDEX units_key ON units(key);
    CREATE TABLE reconciliations (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        at TEXT NOT NULL,
        scope TEXT,
        remote_records INTEGER NOT NULL DEFAULT 0,
        missing INTEGER NOT NULL DEFAULT 0,
        orphans INTEGER NOT NULL DEFAULT 0,
        drift INTEGER NOT NULL DEFAULT 0,
        report_path TEXT,
        detail TEXT
    );
    CREATE TABLE metric_samples (
        at TEXT NOT NULL,
        name TEXT NOT NULL,
        labels TEXT NOT NULL DEFAULT '',
        value REAL NOT NULL,
        PRIMARY KEY (name, labels, at)
    ) WITHOUT ROWID;
    "#,
    // 6: lines without a reason of their own are kept as spans in their unit's row (see
    // spans.rs), which gains its first line's position and its headline reason; versions
    // keep neither a copy of where they came from nor a timestamp (their unit and file
    // have both).
    r#"
    ALTER TABLE units ADD COLUMN line INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE units ADD COLUMN byte INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE units ADD COLUMN record INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE units ADD COLUMN locator TEXT;
    ALTER TABLE units ADD COLUMN rule TEXT;
    ALTER TABLE units ADD COLUMN message TEXT;
    ALTER TABLE units ADD COLUMN spans BLOB;
    UPDATE units SET line = l.line, byte = l.byte, record = l.record, locator = l.locator
        FROM lines l WHERE l.file_id = units.file_id AND l.ordinal = units.first_ordinal;
    ALTER TABLE versions DROP COLUMN source;
    ALTER TABLE versions DROP COLUMN created_at;
    "#,
    // 7: where a resumed file's reader can start again (a `format::Mark` as JSON, written
    // with the batch it follows), so a resume need not parse the committed part again.
    r#"
    ALTER TABLE files ADD COLUMN resume_mark TEXT;
    "#,
    // 8: runs are the workers: on which host, when each was last seen working, and the
    // file it holds (see workers.rs).
    r#"
    ALTER TABLE runs ADD COLUMN host TEXT;
    ALTER TABLE runs ADD COLUMN seen_at TEXT;
    ALTER TABLE runs ADD COLUMN file_id INTEGER;
    "#,
    // 9: leases and fencing (see leases.rs): the run that holds a file, until when (unix
    // milliseconds, renewed while it works), and the token every taking raises; the same
    // for named roles one run plays at a time (a target's relay); and the `work/` folder
    // of each run, where the inputs it claims lie.
    r#"
    ALTER TABLE runs ADD COLUMN work TEXT;
    ALTER TABLE files ADD COLUMN lease_run INTEGER;
    ALTER TABLE files ADD COLUMN lease_until INTEGER;
    ALTER TABLE files ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        lease_run INTEGER,
        lease_until INTEGER,
        fence INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    "#,
    // 10: why a file still being read stopped to wait for another file's decision (its
    // key is held by a file not decided yet); cleared by its next committed batch.
    r#"
    ALTER TABLE files ADD COLUMN waiting_on TEXT;
    "#,
    // 11: a target's rate-limit bucket in the ledger, shared by the workers of every host
    // (used by PostgreSQL ledgers, see buckets.rs; on one host it is a file in `work/`).
    r#"
    CREATE TABLE rate_buckets (
        target TEXT PRIMARY KEY,
        tokens REAL NOT NULL,
        at_us INTEGER NOT NULL,
        paused_until_us INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    "#,
    // 12: smaller rows for what every document leaves: a record version's content hash as
    // the 16 bytes its hex spells (see model.rs `StoredHash`), and acknowledgements stored
    // compressed (an ack repeats the same few segments for every document it answers).
    r#"
    UPDATE versions SET hash = unhex(hash)
        WHERE length(hash) = 32 AND hash NOT GLOB '*[^0-9a-f]*';
    ALTER TABLE acks ADD COLUMN compressed INTEGER NOT NULL DEFAULT 0;
    "#,
    // 13: `units_key` indexes only documents that were not applied. An applied one is
    // found by key through the versions it made (console.rs `key_documents`), so an entry
    // per applied document in this index (a fifth of a unit row again) answered nothing
    // those versions don't.
    M13_UNITS_KEY,
    // 14: indexes for the questions asked at every pass, metrics scrape and console page,
    // which read whole tables that only grow: rejected documents (the reject tally and the
    // exceptions queue read every unit of every decided file), decided files by time and
    // by outcome (the health window, the file states, files rejected whole; `files_state`
    // is the prefix of both), a file's corrections, deliveries by time, delivery
    // latencies per target (sorted every delivered row), dead letters, unfinished runs,
    // old metric samples.
    M14_INDEXES,
    // 15: applied documents with nothing of their own to say are kept as one packed row
    // per batch (see runs.rs), not a `units` row each; the versions a batch made are
    // listed in one row too (see made.rs).
    r#"
    CREATE TABLE unit_runs (
        file_id INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        end_seq INTEGER NOT NULL,
        first_ordinal INTEGER NOT NULL,
        end_ordinal INTEGER NOT NULL,
        units INTEGER NOT NULL,
        lines INTEGER NOT NULL,
        row_lines INTEGER NOT NULL,
        packed BLOB NOT NULL,
        PRIMARY KEY (file_id, first_seq)
    ) WITHOUT ROWID;
    CREATE TABLE version_runs (
        file_id INTEGER NOT NULL,
        first_seq INTEGER NOT NULL,
        end_seq INTEGER NOT NULL,
        versions INTEGER NOT NULL,
        packed BLOB,
        PRIMARY KEY (file_id, first_seq)
    ) WITHOUT ROWID;
    "#,
    // 16: `versions_file` goes; a file still in flight gets a row standing for the
    // versions it made before (packed NULL).
    M16_LEGACY_VERSIONS,
    // 17: how many of a run's units have a detail (NULL for runs written before). An
    // acknowledgement tells every unit of a run without one as applied, without
    // inflating it (see runs.rs `outcomes_between`).
    M17_RUN_DETAILS,
    // 18: a staged chunk's length and CRC-32, and how many of a file's chunks are known
    // synced: a batch commits without waiting for its chunk to reach the disk, and a
    // resumed file checks the chunks after that mark (see engine/syncer.rs).
    M18_CHUNK_SYNC,
];

/// Migration 18, the same SQL on both backends (see `MIGRATIONS`).
pub(super) const M18_CHUNK_SYNC: &str = "ALTER TABLE chunks ADD COLUMN bytes BIGINT; \
     ALTER TABLE chunks ADD COLUMN crc BIGINT; \
     ALTER TABLE files ADD COLUMN synced_chunk BIGINT;";

/// Migration 17, the same SQL on both backends (see `MIGRATIONS`).
pub(super) const M17_RUN_DETAILS: &str = "ALTER TABLE unit_runs ADD COLUMN details BIGINT;";

/// Migration 16, the same SQL on both backends: a `version_runs` row
/// for the versions each file still in flight made before lists were kept, read through
/// `versions_file` before it goes.
pub(super) const M16_LEGACY_VERSIONS: &str = r#"
    INSERT INTO version_runs(file_id, first_seq, end_seq, versions, packed)
        SELECT v.file_id, MIN(v.unit_seq), MAX(v.unit_seq) + 1, COUNT(*), NULL
        FROM versions v JOIN files f ON f.id = v.file_id
        WHERE f.state <> 'done' GROUP BY v.file_id;
    DROP INDEX versions_file;
    "#;

/// Migration 13, the same SQL on both backends (see `MIGRATIONS`).
pub(super) const M13_UNITS_KEY: &str = r#"
    DROP INDEX units_key;
    CREATE INDEX units_key ON units(key) WHERE status <> 'applied';
    "#;

/// Migration 14, the same SQL on both backends (see `MIGRATIONS`).
pub(super) const M14_INDEXES: &str = r#"
    CREATE INDEX units_rejected ON units(status, file_id, seq) WHERE status = 'rejected';
    DROP INDEX files_state;
    CREATE INDEX files_done_at ON files(state, finished_at);
    CREATE INDEX files_outcome ON files(state, outcome);
    CREATE INDEX files_correction ON files(correction_of) WHERE correction_of IS NOT NULL;
    CREATE INDEX deliveries_created ON deliveries(created_at);
    CREATE INDEX deliveries_delivered ON deliveries(delivered_at) WHERE delivered_at IS NOT NULL;
    CREATE INDEX deliveries_latency ON deliveries(target, delivered_at) WHERE state = 'delivered';
    CREATE INDEX deliveries_dead ON deliveries(id) WHERE state = 'dead';
    CREATE INDEX runs_live ON runs(id) WHERE finished_at IS NULL;
    CREATE INDEX metric_samples_at ON metric_samples(at);
    "#;
