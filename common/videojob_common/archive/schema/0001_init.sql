-- The archive: a narrow table for lists, the large documents apart, indexes for the history queries.

-- One row per VideoJob (per uid: a name re-created is a new row). Only what a history list shows
-- and filters on, so a page of 50 reads 50 narrow tuples. Fixed-width columns first (no
-- alignment padding between them).
CREATE TABLE videojob_archive (
    uid          uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz NOT NULL,   -- status.completionTime: the lists' sort key
    archived_at  timestamptz NOT NULL DEFAULT now(),
    gpu_seconds  double precision NOT NULL DEFAULT 0,
    output_bytes bigint,
    namespace    text NOT NULL,
    name         text NOT NULL,
    phase        text NOT NULL,
    reason       text,
    failed_stage text,
    output_uri   text,
    labels       jsonb NOT NULL DEFAULT '{}'
);

-- The documents only `history NAME` reads (a few KB each, compressed and stored out of line
-- by TOAST past 2 KB). In their own table, a list never reads or detoasts them: Argo's archive
-- kept the workflow document in the listed table, and its lists slowed as documents grew.
-- json, not jsonb: they are written once and read whole, never searched inside; json keeps the
-- text as written (checked, not re-encoded), which took a third less time to load than jsonb
-- and a fifth less space (docs/history.md). A later query into them can cast.
CREATE TABLE videojob_archive_detail (
    uid           uuid PRIMARY KEY REFERENCES videojob_archive (uid) ON DELETE CASCADE,
    spec          json NOT NULL,          -- as submitted, URLs redacted
    effective     json,                   -- status.effective: what it ran with
    status        json NOT NULL,          -- the final status, conditions included
    stages        json NOT NULL,          -- per stage: times, attempts, pods, GPU-seconds
    message       text,
    output_md5    text,
    output_crc32c text
);

-- `history -n NS`: newest first in a namespace; keyset pages continue below (finished_at, uid).
CREATE INDEX videojob_archive_ns_finished
    ON videojob_archive (namespace, finished_at DESC, uid DESC);
-- `history -n NS --phase P`.
CREATE INDEX videojob_archive_ns_phase_finished
    ON videojob_archive (namespace, phase, finished_at DESC, uid DESC);
-- `history -A` (every namespace), and `--phase` across namespaces as a filter on it.
CREATE INDEX videojob_archive_finished
    ON videojob_archive (finished_at DESC, uid DESC);
-- `history NAME`: the newest run of a name. (By uid: the primary key.)
CREATE INDEX videojob_archive_ns_name
    ON videojob_archive (namespace, name, finished_at DESC);

-- `history -l k=v`: each label of each row, in the order the lists read them. A page of "newest
-- first with k=v" is then a range of this index, 50 entries long whatever the label: common or
-- rare, recent or only on old rows. (A GIN index on labels, the first design, finds the rows
-- with k=v but not the newest of them: every match is fetched and sorted, 190 ms for a label on
-- 45,000 old rows of one namespace, and the planner's other choice, walking the newest rows
-- and filtering, took 140 ms for the same; docs/history.md.) Written with the row, from its
-- labels, in the same transaction; deleted with it (the uid index serves that).
CREATE TABLE videojob_archive_label (
    uid         uuid NOT NULL REFERENCES videojob_archive (uid) ON DELETE CASCADE,
    finished_at timestamptz NOT NULL,   -- the row's, copied: the index's order
    namespace   text NOT NULL,
    key         text NOT NULL,
    value       text NOT NULL,
    phase       text NOT NULL,          -- the row's, copied: for the index below
    PRIMARY KEY (namespace, key, value, finished_at, uid)
);
CREATE INDEX videojob_archive_label_uid ON videojob_archive_label (uid);
-- `--phase Failed -l k=v`: failures are a few percent of a namespace, so walking k=v and
-- skipping the successes read 30 ms at the tail in one namespace and 0.5 s across all (the
-- first design). Failures' entries alone, in the same order ('Failed': Phase.FAILED).
CREATE INDEX videojob_archive_label_failed
    ON videojob_archive_label (namespace, key, value, finished_at, uid) WHERE phase = 'Failed';
-- Which label of a selector to walk (the rarest): the planner's estimate of each, which these
-- statistics make close for the common (namespace, key, value) triples.
CREATE STATISTICS videojob_archive_label_triples (mcv)
    ON namespace, key, value FROM videojob_archive_label;
ALTER STATISTICS videojob_archive_label_triples SET STATISTICS 1000;

-- Estimates (a list's "about N"): the planner assumes columns independent, but a namespace's
-- phases are its own (one tenant's jobs fail, another's do not). These statistics keep the
-- common (namespace, phase) pairs, so the estimate of one is close.
CREATE STATISTICS videojob_archive_ns_phase (mcv) ON namespace, phase FROM videojob_archive;
