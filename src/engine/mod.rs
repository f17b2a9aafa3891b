//! DPOR engine (stub)
