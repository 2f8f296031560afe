-- 0011: a turn's conversation update checked by the server, so that it can travel with the
-- COMMIT instead of costing a round trip of its own for its row count (every turn saves its
-- conversation at version n; no row at version n means another transaction moved it, or it is
-- gone). Called as `WITH saved AS (UPDATE ... RETURNING 1) SELECT conversation_saved((SELECT
-- count(*) FROM saved), channel, user_id)`: an error aborts the transaction and the COMMIT sent
-- after it with it. SQLite, in process, reads the row count as before.
CREATE FUNCTION conversation_saved(saved bigint, ch text, uid text) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
    IF saved = 1 THEN
        RETURN 1;
    END IF;
    IF EXISTS (SELECT 1 FROM conversations WHERE channel = ch AND user_id = uid) THEN
        RAISE EXCEPTION 'conversation_changed: % %', ch, uid USING ERRCODE = 'serialization_failure';
    END IF;
    RAISE EXCEPTION 'conversation_missing: % %', ch, uid USING ERRCODE = 'no_data_found';
END;
$$;
