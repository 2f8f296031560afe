-- 0003: processed update keys are forgotten by age in one daily scan, not through an index on age.
--
-- The index on processed_updates (at) cost a page write in every turn's commit (~1 of ~9 pages,
-- ~6 % of the bot's throughput in benchmarks/bench.py) to speed up a job that runs once a day; a
-- full scan of a week of keys takes a fraction of a second.
DROP INDEX processed_updates_at;
