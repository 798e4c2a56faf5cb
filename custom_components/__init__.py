"""Custom components namespace for the repository's tests and development instance."""
