"""Holds: a generation's usage reserved before it runs, then captured as a usage event or
released."""
