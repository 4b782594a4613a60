"""The epidose CDS Hooks service (Flask)."""
