//! wagate-dispatch.
