"""Alert rules over server events and ingested audit, with de-duplication."""
