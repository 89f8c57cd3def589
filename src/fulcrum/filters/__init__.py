"""Request filters and their sans-IO building blocks (rate limiting: token buckets, client IP)."""
