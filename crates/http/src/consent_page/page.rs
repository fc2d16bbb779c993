//! The consent page's HTML (maud escapes every interpolated value). No JavaScript.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use wagate_domain::consent::{Campaign, Wording};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:36rem;padding:1rem;color:#1b1f24}
h1{font-size:1.3rem}h2{font-size:1.05rem}
blockquote{margin:1rem 0;padding:.75rem;border-left:4px solid #1d6b35;background:#f3f8f4}
label{display:block;margin:.5rem 0}
input[type=tel]{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
button,a.button{font:inherit;padding:.5rem 1rem;display:inline-block}
.error{background:#fde8e4;border:1px solid #e3a79a;padding:.5rem;border-radius:4px;color:#7a1d0b}
.muted{color:#5b6570;font-size:.9rem}
.hp{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}
";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

pub struct Form<'a> {
    pub campaign: &'a Campaign,
    pub wording: &'a Wording,
    pub csrf: &'a str,
    pub error: Option<&'a str>,
    /// What the person typed, kept after a refusal.
    pub number: &'a str,
}

/// The opt-in form, and the opt-out offer.
pub fn form(form: &Form<'_>) -> Markup {
    let business = &form.wording.business;
    let action = format!("/consent/{}", form.campaign.code);
    layout(
        &format!("WhatsApp messages from {business}"),
        html! {
            h1 { "WhatsApp messages from " (business) }
            @if let Some(error) = form.error {
                p.error id="consent-error" role="alert" { (error) }
            }
            p { "If you agree, " (business) " may send you messages on WhatsApp. This is what you agree to:" }
            blockquote id="wording" lang=(form.wording.language) { (form.wording.text) }
            p.muted { "Wording version " span id="wording-version" { (form.wording.version) } "." }
            form method="post" action=(action) id="opt-in" {
                input type="hidden" name="csrf" value=(form.csrf);
                div.hp aria-hidden="true" {
                    label for="website" { "Leave this empty" }
                    input type="text" id="website" name="website" tabindex="-1" autocomplete="off";
                }
                label for="number" { "Your WhatsApp number, with country code" }
                input type="tel" id="number" name="number" autocomplete="tel" placeholder="+41 79 123 45 67" value=(form.number);
                label {
                    input type="checkbox" id="agree" name="agree" value="yes";
                    " I agree to receive WhatsApp messages from " (business) " as described above."
                }
                p { button type="submit" id="submit" { "Continue" } }
            }
            p.muted { "Next you confirm by sending us one WhatsApp message; until then nothing is sent to you." }
            h2 { "Opting out" }
            p { "You can stop these messages at any time: reply " strong { "STOP" } " on WhatsApp, or enter your number here." }
            form method="post" action=(format!("{action}/opt-out")) id="opt-out" {
                input type="hidden" name="csrf" value=(form.csrf);
                label for="opt-out-number" { "Your WhatsApp number" }
                input type="tel" id="opt-out-number" name="number" autocomplete="tel";
                p { button type="submit" id="opt-out-submit" { "Stop messages" } }
            }
        },
    )
}

/// After a submission: the click-to-chat link that confirms.
pub fn confirm(campaign: &Campaign, wording: &Wording, link: &str) -> Markup {
    let business = &wording.business;
    layout(
        "Confirm on WhatsApp",
        html! {
            h1 { "One more step" }
            @if campaign.confirmation_template.is_some() {
                // The hub sends the campaign's confirmation template (the one message a pending
                // opt-in permits); a YES to it confirms as the prepared message does.
                p { "We have sent you a WhatsApp message asking you to confirm: reply YES to it, or send us the prepared message below. Until you do, " (business) " sends you nothing else." }
            } @else {
                p { "To confirm, send us the prepared WhatsApp message. Until you do, " (business) " sends you nothing." }
            }
            p { a.button id="click-to-chat" href=(link) { "Confirm on WhatsApp" } }
            p.muted { "The message carries the code " code { (campaign.code) } ". If the link does not open WhatsApp, send that code to " (campaign.sender.number()) "." }
            p.muted { "To opt out later, reply STOP on WhatsApp." }
        },
    )
}

pub fn opted_out(wording: &Wording) -> Markup {
    layout(
        "Opted out",
        html! {
            h1 { "You are opted out" }
            p id="opted-out" { (wording.business) " will not send you WhatsApp messages. To opt in again, send START on WhatsApp." }
        },
    )
}

pub fn closed(campaign: &Campaign, wording: &Wording) -> Markup {
    layout(
        "Campaign closed",
        html! {
            h1 { "This consent form is closed" }
            p id="closed-campaign" {
                "This form of " (wording.business) " (campaign " (campaign.code) ") is closed: "
                "nothing was recorded and sending its WhatsApp message no longer records consent."
            }
            p { "To stop messages from " (wording.business) ", send STOP to them on WhatsApp." }
        },
    )
}

pub fn unknown() -> Markup {
    layout(
        "Unknown campaign",
        html! {
            h1 { "This link is not valid" }
            p id="unknown-campaign" { "There is no consent form at this address (it may have been mistyped or closed). Nothing was recorded." }
        },
    )
}
