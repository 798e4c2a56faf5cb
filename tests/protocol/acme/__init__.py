"""Tests of the ACME client package."""
