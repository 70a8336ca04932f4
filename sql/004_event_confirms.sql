-- ledgerq schema, version 4: which result events the broker confirmed.
-- oldest release: 0.1.0
--
-- Every processed id must get at least one result event with duplicate
-- false.  A worker that committed a batch but lost its broker connection
-- before the broker confirmed the batch's events leaves outcomes that no
-- consumer may have seen; the redelivered command then publishes its first
-- outcome again.  To tell the two apart, each stored outcome names the
-- batch (transaction) that stored it, and a worker records each batch whose
-- events were all confirmed, one row per batch, in its next transaction.
--
-- Expand only: release 0.1.0 workers keep running against this schema.
-- They store outcomes without a batch (NULL), which count as confirmed, as
-- they always did.

ALTER TABLE payments ADD COLUMN batch_id bigint;

-- Batch numbers: nextval() once per batch transaction.
CREATE SEQUENCE payments_batch_id_seq;

-- Batches whose result events the broker confirmed.  Operational state
-- (ops_): no balance or outcome depends on it.
CREATE TABLE ops_confirmed_batches (
    batch_id     bigint      PRIMARY KEY,
    confirmed_at timestamptz NOT NULL DEFAULT now()
);

-- Single outcomes whose first event was published again, after its batch
-- lost its confirms, and confirmed then.
CREATE TABLE ops_confirmed_payments (
    payment_id   text        PRIMARY KEY,
    confirmed_at timestamptz NOT NULL DEFAULT now()
);
