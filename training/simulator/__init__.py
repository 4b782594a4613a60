"""A sourced PK/PD simulator of children with BECT treated with levetiracetam, speaking FHIR R4."""
