"""Steps that span several repositories or systems (database + Redis + gateway), shared by the bot
handlers, the tick and the jobs. Pure rules live in `core/`, SQL in `db/`."""
