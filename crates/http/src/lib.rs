//! wagate-http.
