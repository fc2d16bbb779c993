//! What a HubSpot record says: the text of a message as the contact saw it, its direction and
//! its status, as plain text escaped for HubSpot's HTML body.

use wagate_app::{Hub, MessageView};
use wagate_domain::{Event, MessageEvent, MessageStatus};

/// `text` safe inside HubSpot's HTML body, line breaks kept.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out
}

/// `{{key}}` placeholders of `body` filled from `variables`.
pub fn fill(body: &str, variables: &[(String, String)]) -> String {
    let mut out = body.to_owned();
    for (key, value) in variables {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

/// The outbound message's text as the contact saw it: a freeform text, or a template's body
/// with its variables (a template created in wagate); for a template wagate only knows by name,
/// its name and variables.
pub fn outbound_text(hub: &Hub, view: &MessageView) -> Option<String> {
    view.history.iter().find_map(|entry| match &entry.event {
        Event::Message(MessageEvent::ReplySent { text, .. }) => Some(text.clone()),
        Event::Message(MessageEvent::TemplateSent {
            template,
            variables,
            ..
        }) => {
            let state = hub.template(template).ok().map(|loaded| loaded.state);
            let body = state
                .as_ref()
                .and_then(|state| state.created.as_ref())
                .map(|created| fill(&created.content.body, variables));
            Some(body.unwrap_or_else(|| {
                let name = state
                    .as_ref()
                    .and_then(|state| state.definition.as_ref())
                    .map_or_else(|| template.to_string(), |d| d.name.clone());
                let values: Vec<String> = variables
                    .iter()
                    .map(|(key, value)| format!("{{{{{key}}}}} = {value}"))
                    .collect();
                if values.is_empty() {
                    format!("Template {name}")
                } else {
                    format!("Template {name}: {}", values.join(", "))
                }
            }))
        }
        _ => None,
    })
}

/// The status line of an outbound message: `sent`, `delivered`, `read`, `failed: <reason>`.
pub fn status_line(view: &MessageView) -> String {
    let state = &view.state;
    let status = state.status.as_str().to_owned();
    let failed = matches!(
        state.status,
        MessageStatus::Failed | MessageStatus::Undelivered | MessageStatus::Canceled
    );
    if !failed {
        return status;
    }
    if let Some(error) = &state.last_error {
        return format!("{status}: {error}");
    }
    if let Some(rule) = &state.canceled_by {
        return format!("{status}: refused by rule {}", rule.as_str());
    }
    // A failure callback's code, when the provider gave one.
    match state.history.iter().rev().find_map(|seen| seen.error_code) {
        Some(code) => format!("{status}: provider error {code}"),
        None => status,
    }
}

/// The Communication body of an outbound message.
pub fn outbound_body(text: &str, status: &str) -> String {
    format!(
        "<p><strong>WhatsApp message sent by wagate</strong></p><p>{}</p><p>Status: {}</p>",
        html(text),
        html(status)
    )
}

/// The Communication body of an inbound message.
pub fn inbound_body(kind: &str, text: &str) -> String {
    let shown = if text.is_empty() {
        format!("({kind})")
    } else {
        text.to_owned()
    };
    format!(
        "<p><strong>WhatsApp message received</strong></p><p>{}</p>",
        html(&shown)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_text_is_escaped() {
        let vars = vec![("1".to_owned(), "Lea".to_owned())];
        assert_eq!(fill("Hi {{1}}, {{2}}", &vars), "Hi Lea, {{2}}");
        assert_eq!(html("a<b>&\"\nc"), "a&lt;b&gt;&amp;&quot;<br>c");
        assert!(outbound_body("x<y", "read").ends_with("<p>Status: read</p>"));
        assert!(inbound_body("image", "").contains("(image)"));
    }
}
