-- name: LeaderTry :one
-- LeaderTry takes the session advisory lock of one leader-only duty (the scheduler, the
-- collector, an evaluator): the replica whose connection holds it does the duty; the lock is
-- released when that connection ends.
SELECT pg_try_advisory_lock(hashtextextended(sqlc.arg(duty)::text, 0));
