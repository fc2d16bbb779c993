//! wagate-sim.
