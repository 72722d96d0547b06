"""Finance page routes beyond sign-in and invoices, one module per page."""
