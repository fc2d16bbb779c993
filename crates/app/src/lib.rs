//! wagate-app.
