-- ledgerq schema, version 5: command types, account statuses and limits, the account history.
-- oldest release: 0.1.0
--
-- Expand only.  Workers of releases 0.1.0 and 0.2.0 keep running against
-- this schema until they are replaced:
--   - payments keeps every command of every type (one id namespace); the
--     columns added have defaults that describe what the old releases store
--     (transfers);
--   - the accounts' new settings have defaults that mean what the old
--     releases assume (active, no overdraft, no ceiling, nothing held);
--   - the history of every account is back-filled here from what the ledger
--     holds, and the transfers an old worker applies from now on get their
--     entries from a trigger (a worker of this release writes its own and
--     says so with the setting ledgerq.writes_history).  A later release
--     drops that trigger once no old worker can run.
-- The back-fill holds the accounts and payments tables against writers
-- until this migration commits: the workers' batches wait (and retry) that
-- long.

-- ------------------------------------------------------------ commands

-- account.open and account.update share the table, and the id namespace,
-- with transfers.
ALTER TABLE payments ADD COLUMN type text NOT NULL DEFAULT 'transfer';
-- An account command's account, and the fields it gave (its reason too).
ALTER TABLE payments ADD COLUMN account text;
ALTER TABLE payments ADD COLUMN change jsonb;

ALTER TABLE payments ADD CONSTRAINT payments_type_known
    CHECK (type IN ('transfer', 'account.open', 'account.update')) NOT VALID;
-- Transfers have 1 to 64 legs; account commands none.
ALTER TABLE payments DROP CONSTRAINT payments_legs_count;
ALTER TABLE payments ADD CONSTRAINT payments_legs_by_type
    CHECK (jsonb_typeof(legs) = 'array'
           AND CASE WHEN type = 'transfer' THEN jsonb_array_length(legs) BETWEEN 1 AND 64
                    ELSE jsonb_array_length(legs) = 0 END) NOT VALID;
ALTER TABLE payments DROP CONSTRAINT payments_reason_known;
ALTER TABLE payments ADD CONSTRAINT payments_reason_known_v5
    CHECK (reason IN ('account_not_found', 'currency_mismatch', 'insufficient_funds',
                      'amount_overflow', 'account_exists', 'account_closed', 'account_frozen',
                      'account_not_empty', 'account_has_holds', 'balance_outside_limits',
                      'exceeds_max_balance')) NOT VALID;

-- ------------------------------------------------------------ accounts

ALTER TABLE accounts ADD COLUMN status text NOT NULL DEFAULT 'active';
-- Without allow_negative, the balance (less held debits) may go down to minus this.
ALTER TABLE accounts ADD COLUMN overdraft_limit bigint NOT NULL DEFAULT 0;
-- The most the balance (plus held credits) may reach; NULL: no ceiling.
ALTER TABLE accounts ADD COLUMN max_balance bigint;
-- Held by pending holds (a later release places them).
ALTER TABLE accounts ADD COLUMN held_debits bigint NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN held_credits bigint NOT NULL DEFAULT 0;
-- History entries so far: the seq of the account's last entry.
ALTER TABLE accounts ADD COLUMN entries bigint NOT NULL DEFAULT 0;

ALTER TABLE accounts ADD CONSTRAINT accounts_status_known
    CHECK (status IN ('active', 'frozen', 'closed')) NOT VALID;
ALTER TABLE accounts ADD CONSTRAINT accounts_settings_valid
    CHECK (overdraft_limit >= 0 AND (max_balance IS NULL OR max_balance >= 1)
           AND held_debits >= 0 AND held_credits >= 0 AND entries >= 0) NOT VALID;
-- The floor and the ceiling, in numeric: the sums may leave bigint's range.
-- The floor replaces accounts_no_overdraft, which knew no overdraft limit.
ALTER TABLE accounts DROP CONSTRAINT accounts_no_overdraft;
ALTER TABLE accounts ADD CONSTRAINT accounts_within_floor
    CHECK (allow_negative
           OR credits::numeric - debits - held_debits >= -overdraft_limit) NOT VALID;
ALTER TABLE accounts ADD CONSTRAINT accounts_within_ceiling
    CHECK (max_balance IS NULL
           OR credits::numeric - debits + held_credits <= max_balance) NOT VALID;

-- ------------------------------------------------------------ history

-- Every change to an account, in the order it was applied: seq 1, 2, 3, ...
-- per account without gaps.  amount is the signed change to the balance;
-- balance and the held amounts are the values just after.  at never
-- decreases along an account's entries (an entry is written under the
-- account's row lock, with the time of the writing statement).
CREATE TABLE account_entries (
    account_id   text        NOT NULL,
    seq          bigint      NOT NULL,
    command_id   text        NOT NULL,
    type         text        NOT NULL,
    leg          smallint,
    amount       bigint      NOT NULL,
    balance      bigint      NOT NULL,
    held_debits  bigint      NOT NULL,
    held_credits bigint      NOT NULL,
    at           timestamptz NOT NULL,
    change       jsonb,
    PRIMARY KEY (account_id, seq)
);

-- The first seq of account a whose entry is at or after t (after t when
-- strictly), or the account's entry count plus one when there is none: a
-- binary search over seq, a few index probes however long the history.
CREATE FUNCTION ledgerq_entry_seq_at(a text, t timestamptz, strictly boolean) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    lo bigint := 1;
    hi bigint;
    mid bigint;
    mid_at timestamptz;
BEGIN
    SELECT coalesce(max(e.seq), 0) + 1 INTO hi FROM account_entries e WHERE e.account_id = a;
    WHILE lo < hi LOOP
        mid := lo + (hi - lo) / 2;
        SELECT e.at INTO mid_at FROM account_entries e WHERE e.account_id = a AND e.seq = mid;
        IF mid_at > t OR (mid_at = t AND NOT strictly) THEN
            hi := mid;
        ELSE
            lo := mid + 1;
        END IF;
    END LOOP;
    RETURN lo;
END
$$;

-- ------------------------------------------------------------ back-fill

LOCK TABLE accounts, payments IN SHARE ROW EXCLUSIVE MODE;

-- Each account's opening, under a command id of the kind the CLI makes:
-- accounts were opened by `ledgerq account open|import` until now.
INSERT INTO account_entries (account_id, seq, command_id, type, leg, amount, balance,
                             held_debits, held_credits, at)
SELECT id, 1, 'cli-open-' || id, 'account.open', NULL, 0, 0, 0, 0, created_at FROM accounts;

-- Each leg of an applied transfer, on both accounts, in the order the
-- transfers were applied (their time, then their id in byte order, then the
-- leg), with the running balance.
INSERT INTO account_entries (account_id, seq, command_id, type, leg, amount, balance,
                             held_debits, held_credits, at)
SELECT s.account_id,
       1 + row_number() OVER w,
       s.command_id, 'transfer', s.leg, s.amount,
       (sum(s.amount) OVER w)::bigint,
       0, 0, s.processed_at
  FROM (SELECT p.id AS command_id, p.processed_at, e.n AS leg, e.l ->> 'debit' AS account_id,
               -(e.l ->> 'amount')::bigint AS amount, 1 AS side
          FROM payments p CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)
         WHERE p.status = 'applied'
        UNION ALL
        SELECT p.id, p.processed_at, e.n, e.l ->> 'credit', (e.l ->> 'amount')::bigint, 2
          FROM payments p CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)
         WHERE p.status = 'applied') AS s
WINDOW w AS (PARTITION BY s.account_id ORDER BY s.processed_at, s.command_id COLLATE "C", s.leg,
                                                s.side
             ROWS UNBOUNDED PRECEDING);

UPDATE accounts a SET entries = c.n
  FROM (SELECT account_id, max(seq) AS n FROM account_entries GROUP BY account_id) AS c
 WHERE a.id = c.account_id;

-- ------------------------------------------------------------ old releases' writes

-- A transfer applied by a worker of an earlier release (which writes no
-- history) gets its entries here, in the same transaction, under the row
-- locks that worker holds.  Its totals update comes after, in its own
-- statement: the entries therefore take their balance from the account's
-- previous entry.
CREATE FUNCTION ledgerq_history_of_old_release() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    l jsonb;
    n integer := 0;
    side integer;
    acct text;
    change bigint;
    next_seq bigint;
    before bigint;
BEGIN
    FOR l IN SELECT value FROM jsonb_array_elements(NEW.legs) LOOP
        n := n + 1;
        FOR side IN 1 .. 2 LOOP
            IF side = 1 THEN
                acct := l ->> 'debit';
                change := -(l ->> 'amount')::bigint;
            ELSE
                acct := l ->> 'credit';
                change := (l ->> 'amount')::bigint;
            END IF;
            UPDATE accounts SET entries = entries + 1 WHERE id = acct RETURNING entries INTO next_seq;
            SELECT e.balance INTO before FROM account_entries e
             WHERE e.account_id = acct AND e.seq = next_seq - 1;
            INSERT INTO account_entries (account_id, seq, command_id, type, leg, amount, balance,
                                         held_debits, held_credits, at)
            VALUES (acct, next_seq, NEW.id, 'transfer', n, change, coalesce(before, 0) + change,
                    0, 0, statement_timestamp());
        END LOOP;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER payments_history_of_old_release AFTER INSERT ON payments FOR EACH ROW
    WHEN (NEW.status = 'applied' AND NEW.type = 'transfer'
          AND current_setting('ledgerq.writes_history', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ledgerq_history_of_old_release();

-- An account opened by an earlier release's `ledgerq account open|import`.
CREATE FUNCTION ledgerq_opening_of_old_release() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.entries := 1;
    INSERT INTO account_entries (account_id, seq, command_id, type, leg, amount, balance,
                                 held_debits, held_credits, at)
    VALUES (NEW.id, 1, 'cli-open-' || NEW.id, 'account.open', NULL, 0, 0, 0, 0,
            statement_timestamp());
    RETURN NEW;
END
$$;

CREATE TRIGGER accounts_opening_of_old_release BEFORE INSERT ON accounts FOR EACH ROW
    WHEN (current_setting('ledgerq.writes_history', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ledgerq_opening_of_old_release();
