"""Clinical acceptance suite: hand-written FHIR charts and their expected decisions."""
