"""Lago pass-throughs: wallets, wallet transactions, applied coupons, plans, metrics, coupons."""
