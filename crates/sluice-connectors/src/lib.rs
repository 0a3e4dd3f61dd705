//! Sluice's built-in connectors.
