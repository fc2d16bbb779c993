//! The HTTP client the operator commands use to reach a running hub.
