"""What each job kind does inside the worker process. Heavy libraries load only here."""
