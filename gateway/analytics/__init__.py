"""Lago's revenue analytics (MRR, gross revenue, collections, overdue balance, invoiced usage)."""
