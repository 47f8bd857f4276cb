-- Sends whose outcome is unknown (docs/runtime.md): when an attempt that may have been posted was made
-- (its request went unanswered, or its job died holding the row). A later attempt repeats it with the
-- same random_id while Telegram is trusted to remember that id, and past that reads the group's history
-- first, so a post is neither made twice nor given up on without cause.
ALTER TABLE deliveries ADD COLUMN unsure_since TIMESTAMPTZ;
