-- Which process owns a queued or running run, so that recovery at start-up interrupts only
-- the runs of processes that are gone, never those of another live `runner` process on the
-- same data directory. Text `<boot id>:<pid>:<process start time>`, which no other process
-- can share (a reused pid has another start time; a reboot another boot id).
ALTER TABLE runs ADD COLUMN owner TEXT;
