//! The dispatcher in the simulated world: one test binary.

// Random runs: every invariant after every action, then settled to rest.
mod properties;
// Named scenarios, each once a bug or a requirement.
mod regressions;
// Callbacks before the response, joined later.
mod early_callbacks;
// Strategies and helpers.
mod support;
