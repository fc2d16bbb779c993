//! Dispatch scenarios again with their hubs on PostgreSQL (issue 17): a message through the
//! in-process dispatcher to `read`, `wagate dispatch` as a second process, a send through
//! Twilio matched with its callbacks, and a send whose answer is unreadable (in doubt) settled
//! by its callback. Each calls the scenario's own test function under
//! [`on_postgres`](crate::support::on_postgres) (one private server for the test binary, one
//! database per hub). `WAGATE_E2E_STORE=postgres` runs the whole suite there.

use crate::support::on_postgres;

#[test]
fn a_message_goes_through_the_sandbox_to_read_on_postgres() {
    on_postgres(crate::serve_carries_a_message_through_the_sandbox_to_read);
}

#[test]
fn wagate_dispatch_as_a_second_process_on_postgres() {
    on_postgres(crate::wagate_dispatch_as_a_second_process);
}

#[test]
fn a_send_through_twilio_matches_its_callbacks_on_postgres() {
    on_postgres(crate::live::serve_sends_through_twilio_and_matches_its_callbacks);
}

#[test]
fn an_in_doubt_send_is_settled_by_its_callback_on_postgres() {
    on_postgres(crate::in_doubt::serve_sends_once_on_an_unreadable_2xx_and_the_callback_settles_it);
}
