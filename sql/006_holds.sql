-- ledgerq schema, version 6: holds, captures and voids.
-- oldest release: 0.1.0
--
-- Expand only.  Workers of release 0.1.0 keep running against this schema
-- until they are replaced: they never place a hold, and what they store
-- (transfers) passes every constraint below.  Until they are gone they
-- dead-letter holds, captures and voids and decide transfers without
-- counting held amounts (docs/upgrades.md: the features of a release are
-- used once the rollout is over).

-- ------------------------------------------------------------ commands

-- A hold, a capture and a void share the table, and the id namespace, with
-- the other commands.  A capture's or void's hold:
ALTER TABLE payments ADD COLUMN hold text;

ALTER TABLE payments ADD CONSTRAINT payments_type_known_v6
    CHECK (type IN ('transfer', 'account.open', 'account.update', 'hold', 'capture', 'void'))
    NOT VALID;
ALTER TABLE payments DROP CONSTRAINT payments_type_known;
-- Transfers and holds have the legs asked for, 1 to 64; an applied capture
-- the legs it posted; a rejected capture, a void and account commands none.
ALTER TABLE payments ADD CONSTRAINT payments_legs_by_type_v6
    CHECK (jsonb_typeof(legs) = 'array'
           AND CASE WHEN type IN ('transfer', 'hold')
                         OR (type = 'capture' AND status = 'applied')
                    THEN jsonb_array_length(legs) BETWEEN 1 AND 64
                    ELSE jsonb_array_length(legs) = 0 END) NOT VALID;
ALTER TABLE payments DROP CONSTRAINT payments_legs_by_type;
ALTER TABLE payments ADD CONSTRAINT payments_reason_known_v6
    CHECK (reason IN ('account_not_found', 'currency_mismatch', 'insufficient_funds',
                      'amount_overflow', 'account_exists', 'account_closed', 'account_frozen',
                      'account_not_empty', 'account_has_holds', 'balance_outside_limits',
                      'exceeds_max_balance', 'hold_not_found', 'hold_already_captured',
                      'hold_already_voided', 'hold_expired', 'exceeds_hold_amount',
                      'partial_capture_not_supported')) NOT VALID;
ALTER TABLE payments DROP CONSTRAINT payments_reason_known_v5;
ALTER TABLE payments ADD CONSTRAINT payments_hold_by_type
    CHECK ((type IN ('capture', 'void')) = (hold IS NOT NULL)) NOT VALID;

-- ------------------------------------------------------------ holds

-- Each applied hold: pending until it is captured, voided or expired, once
-- and for all.  Its legs are those of its row in payments.  expires_at is
-- NULL for a hold without timeout_s.  resolved_by is the capture or void
-- that resolved it (NULL for an expiry), resolved_at when.
CREATE TABLE holds (
    id          text        PRIMARY KEY,
    status      text        NOT NULL DEFAULT 'pending'
                            CONSTRAINT holds_status_known
                            CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    resolved_by text,
    resolved_at timestamptz,
    CONSTRAINT holds_resolution CHECK (
        CASE status
            WHEN 'pending' THEN resolved_by IS NULL AND resolved_at IS NULL
            WHEN 'expired' THEN resolved_by IS NULL AND resolved_at IS NOT NULL
                                AND expires_at IS NOT NULL
            ELSE resolved_by IS NOT NULL AND resolved_at IS NOT NULL
        END)
);

-- The expiry sweep's queue: pending holds by expiry time.
CREATE INDEX holds_pending_expiry ON holds (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- Expiries whose hold.expired event the broker has not been seen to
-- confirm: batch_id is the batch number (payments_batch_id_seq) of the last
-- publish of the event, published_at when that was.  A row goes once
-- ops_confirmed_batches has its batch; one left over (its worker died
-- before the confirm) is published again by any worker.  Small: only the
-- last second's expiries, and those a crash left.
CREATE TABLE ops_hold_expiry_events (
    hold_id      text        PRIMARY KEY,
    batch_id     bigint      NOT NULL,
    released_at  timestamptz NOT NULL,
    published_at timestamptz NOT NULL
);

-- ------------------------------------------------------------ postings

-- A hold posts nothing: postings are the legs of applied transfers and
-- captures (and of applied commands of older releases: transfers).
CREATE OR REPLACE VIEW postings AS
SELECT p.id AS payment_id,
       e.n::smallint AS leg,
       e.l ->> 'debit' AS debit,
       e.l ->> 'credit' AS credit,
       CASE WHEN (e.l ->> 'amount') !~ '^[0-9]{1,19}$' THEN NULL
            WHEN (e.l ->> 'amount')::numeric > 9223372036854775807 THEN NULL
            ELSE (e.l ->> 'amount')::bigint END AS amount,
       e.l ->> 'currency' AS currency
  FROM payments p
 CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)
 WHERE p.status = 'applied' AND p.type IN ('transfer', 'capture');
