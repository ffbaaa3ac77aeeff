"""The Textual dashboard, a client of the daemon's socket (arrives with the dashboard)."""
