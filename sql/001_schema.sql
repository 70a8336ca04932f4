-- ledgerq schema, version 1: accounts, payments (one stored outcome per id)
-- and postings (the legs of applied payments).  Version 2 (002) replaces the
-- postings table by a view of payments.legs.
--
-- The database enforces what it can: keys, formats, non-negative totals,
-- the no-overdraft rule and foreign keys from postings to accounts. The
-- outcome rules themselves (docs/protocol.md section 5) are decided by the worker
-- under row locks; `ledgerq audit` re-checks the invariants.

CREATE TABLE accounts (
    id             text        PRIMARY KEY
                               CONSTRAINT accounts_id_format CHECK (id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    currency       text        NOT NULL
                               CONSTRAINT accounts_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    allow_negative boolean     NOT NULL DEFAULT false,
    -- Totals in minor units. The balance is credits - debits: with both
    -- non-negative it always fits in a bigint.
    debits         bigint      NOT NULL DEFAULT 0 CONSTRAINT accounts_debits_non_negative CHECK (debits >= 0),
    credits        bigint      NOT NULL DEFAULT 0 CONSTRAINT accounts_credits_non_negative CHECK (credits >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_no_overdraft CHECK (allow_negative OR credits >= debits)
);

CREATE TABLE payments (
    id           text        PRIMARY KEY
                             CONSTRAINT payments_id_format CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    -- sha256 of the command's canonical content (every field but metadata):
    -- a later command with the same id is a duplicate when it matches, an
    -- idempotency conflict when it does not.
    fingerprint  bytea       NOT NULL CONSTRAINT payments_fingerprint_sha256 CHECK (length(fingerprint) = 32),
    status       text        NOT NULL CONSTRAINT payments_status_known CHECK (status IN ('applied', 'rejected')),
    reason       text        CONSTRAINT payments_reason_known
                             CHECK (reason IN ('account_not_found', 'currency_mismatch',
                                               'insufficient_funds', 'amount_overflow')),
    detail       text,
    -- The legs as requested, applied or not: [{"debit","credit","amount","currency"}].
    legs         jsonb       NOT NULL
                             CONSTRAINT payments_legs_count
                             CHECK (jsonb_typeof(legs) = 'array'
                                    AND jsonb_array_length(legs) BETWEEN 1 AND 64),
    reference    text        CONSTRAINT payments_reference_size CHECK (octet_length(reference) <= 256),
    metadata     jsonb       CONSTRAINT payments_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    processed_at timestamptz NOT NULL,
    CONSTRAINT payments_reason_iff_rejected CHECK ((status = 'rejected') = (reason IS NOT NULL))
);

-- One row per leg of an applied payment: it debits `debit` and credits
-- `credit` with the same amount in the same currency.
CREATE TABLE postings (
    payment_id text     NOT NULL REFERENCES payments (id),
    leg        smallint NOT NULL CONSTRAINT postings_leg_range CHECK (leg BETWEEN 1 AND 64),
    debit      text     NOT NULL REFERENCES accounts (id),
    credit     text     NOT NULL REFERENCES accounts (id),
    amount     bigint   NOT NULL CONSTRAINT postings_amount_positive CHECK (amount > 0),
    currency   text     NOT NULL CONSTRAINT postings_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    PRIMARY KEY (payment_id, leg),
    CONSTRAINT postings_two_accounts CHECK (debit <> credit)
);
