"""Tests of serving the managed certificate from Home Assistant."""
