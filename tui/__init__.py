"""The Textual dashboard: a client of the daemon's socket and a reader of its store (`automl tui`)."""
