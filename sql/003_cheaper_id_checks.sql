-- ledgerq schema, version 3: the same id format checks, cheaper.
--
-- PostgreSQL's regex engine expands a bounded repetition such as {1,128}
-- into that many states: matching '^[A-Za-z0-9._:-]{1,128}$' cost a batch
-- insert about half its time (some 15 µs per payment), and the accounts
-- check, evaluated again on every totals update, a third of the update's.
-- A length bound plus "no character outside the set" accepts exactly the
-- same ids: every allowed character is one byte, so length() counts them.
-- Adding the constraints checks the existing rows once (a scan of each
-- table under the migration's lock).

ALTER TABLE payments
    DROP CONSTRAINT payments_id_format,
    ADD CONSTRAINT payments_id_format
        CHECK (length(id) BETWEEN 1 AND 128 AND id !~ '[^A-Za-z0-9._:-]');

ALTER TABLE accounts
    DROP CONSTRAINT accounts_id_format,
    ADD CONSTRAINT accounts_id_format
        CHECK (length(id) BETWEEN 1 AND 64 AND id !~ '[^A-Za-z0-9._:-]');
