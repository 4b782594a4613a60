"""Test support code (servers, builders)."""
