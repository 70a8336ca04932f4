-- ledgerq schema, version 2: postings become a view of the legs of applied
-- payments; accounts leave room on their pages for balance updates.
--
-- A posting was a second copy of a leg of an applied payment (the audit
-- checked that they matched), and inserting it, with a foreign-key check
-- on each of its three references, cost a batch more than inserting the
-- payments themselves.  payments.legs is now the only copy: `postings` is a
-- view with the table's name and columns, and `ledgerq audit` checks what
-- the table's constraints used to enforce (both accounts exist and differ,
-- the amount is positive, the currency is both accounts').

-- Refuse to drop a posting the view would not give back, or to let the
-- view show one that was never posted.
DO $$
BEGIN
    IF EXISTS (
        (SELECT payment_id, leg::bigint, debit, credit, amount::numeric, currency FROM postings
         EXCEPT ALL
         SELECT p.id, e.n, e.l ->> 'debit', e.l ->> 'credit', (e.l ->> 'amount')::numeric,
                e.l ->> 'currency'
           FROM payments p CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)
          WHERE p.status = 'applied')
        UNION ALL
        (SELECT p.id, e.n, e.l ->> 'debit', e.l ->> 'credit', (e.l ->> 'amount')::numeric,
                e.l ->> 'currency'
           FROM payments p CROSS JOIN LATERAL jsonb_array_elements(p.legs) WITH ORDINALITY AS e(l, n)
          WHERE p.status = 'applied'
         EXCEPT ALL
         SELECT payment_id, leg::bigint, debit, credit, amount::numeric, currency FROM postings))
    THEN
        RAISE EXCEPTION 'postings differ from the legs of applied payments: '
                        'see `ledgerq audit`, repair, then migrate again';
    END IF;
END
$$;

DROP TABLE postings;

-- One row per leg of an applied payment: it debits `debit` and credits
-- `credit` with `amount` in `currency`.  A leg that is not a whole amount
-- within bigint (only a direct write to payments.legs could make one) shows
-- a NULL amount rather than failing every query of the view: the audit
-- reports it.
CREATE VIEW postings AS
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
 WHERE p.status = 'applied';

-- Every batch rewrites the totals of the accounts it touches.  Free room
-- on the page lets PostgreSQL keep the new row version there (a HOT update:
-- no new entry in accounts_pkey).  Applies to pages written from now on;
-- VACUUM FULL accounts repacks the existing ones.
ALTER TABLE accounts SET (fillfactor = 75);
