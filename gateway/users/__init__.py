"""People who sign in to the finance pages: accounts, roles, passwords, sign-in throttling."""
