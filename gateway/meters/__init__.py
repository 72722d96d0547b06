"""Local usage meters: what each subscription used in its current billing period."""
