"""Who may do what: API tokens, the auth middleware in front of every route, the console's ``/v1/session``."""
