"""Security primitives: tokens, passwords, throttling, client-address hashing."""
