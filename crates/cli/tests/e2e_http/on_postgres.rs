//! Scenarios of this suite run again with their hubs on PostgreSQL (issue 17: the end-to-end
//! suite passes on both backends): webhooks recorded once, a STOP refusing the next send,
//! concurrent webhooks and commands, idempotency keys across a restart, a graceful stop and
//! restart, the event feed. Each calls the scenario's own test function under
//! [`on_postgres`](crate::support::on_postgres); each hub gets its own database on one private
//! server for the whole test binary. `WAGATE_E2E_STORE=postgres` runs the whole suite there.

use crate::support::on_postgres;

#[test]
fn webhooks_are_accepted_once_on_postgres() {
    on_postgres(
        crate::webhooks::signed_fixtures_are_accepted_once_tampered_ones_rejected_and_audited,
    );
}

#[test]
fn a_stop_refuses_the_next_send_on_postgres() {
    on_postgres(crate::webhooks::a_stop_makes_the_next_send_422_opted_out);
}

#[test]
fn concurrent_webhooks_and_commands_land_once_on_postgres() {
    on_postgres(crate::webhooks::concurrent_webhooks_and_commands_each_land_exactly_once);
}

#[test]
fn idempotency_keys_replay_across_a_restart_on_postgres() {
    on_postgres(crate::idempotency::replays_reused_keys_and_races_over_http_and_across_a_restart);
}

#[test]
fn the_log_survives_a_graceful_restart_on_postgres() {
    on_postgres(crate::lifecycle::sigterm_stops_gracefully_and_the_log_survives_a_restart);
}

#[test]
fn the_event_feed_follows_new_events_on_postgres() {
    on_postgres(crate::commands::the_event_feed_follows_new_events);
}
