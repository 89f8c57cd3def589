"""The differential fuzzer: generated requests through a real Fulcrum to a backend that parses with h11."""
