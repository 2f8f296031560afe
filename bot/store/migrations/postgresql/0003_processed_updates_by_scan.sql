-- 0003: processed update keys are forgotten by age in one daily scan, as on SQLite (sqlite/0003).
DROP INDEX processed_updates_at;
