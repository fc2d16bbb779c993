//! STOP/START keyword recognition for inbound WhatsApp messages.
//!
//! Twilio's keyword handling is documented for SMS only, so wagate applies the same keyword sets
//! to WhatsApp itself (docs/providers.md, "Keywords"). A keyword counts only when it is the whole message
//! (case, surrounding whitespace and punctuation ignored): "stop" and " Stop! " opt out, "don't
//! stop" does not. A message that merely mentions opting out ("please stop texting me") is neither
//! ignored nor applied: it is flagged for a person to review.

/// Twilio's default English opt-out keywords, plus common local forms for contacts abroad.
const OPT_OUT_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
    // Local forms (contacts abroad): de, fr, es, pt, it, nl.
    "STOPP",
    "ARRET",
    "ARRÊT",
    "BAJA",
    "PARAR",
    "PARE",
    "SAIR",
    "BASTA",
    "AFMELDEN",
];

/// Keywords that always re-opt-in (Twilio's START and UNSTOP).
const OPT_IN_KEYWORDS: &[&str] = &["START", "UNSTOP"];

/// Twilio also lists YES as an opt-in keyword. On WhatsApp "yes" is an everyday answer, so it only
/// re-opts-in a contact who is currently opted out; otherwise it is an ordinary message.
const OPT_IN_IF_OPTED_OUT_KEYWORDS: &[&str] = &["YES"];

/// Words or phrases that, inside a longer message, suggest the contact wants no more messages.
/// Deliberately narrow: "end" and "cancel" appear in ordinary sentences ("cancel my viewing").
const OPT_OUT_MENTIONS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "OPTOUT",
    "OPT OUT",
    "REMOVE ME",
    "DO NOT CONTACT",
    "DONT CONTACT",
    "DO NOT MESSAGE",
    "DONT MESSAGE",
    "NO MORE MESSAGES",
    "LEAVE ME ALONE",
];

/// What an inbound message's text means for consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeywordMatch {
    /// The whole message is an opt-out keyword (the normalized keyword).
    OptOut(String),
    /// The whole message is an opt-in keyword.
    OptIn(String),
    /// The whole message is an opt-in keyword that only counts for an opted-out contact.
    OptInIfOptedOut(String),
    /// The message mentions opting out without being a keyword: a person must look at it.
    OptOutMention(String),
    /// Nothing to do with consent.
    None,
}

/// Classifies an inbound message's text.
pub fn classify(text: &str) -> KeywordMatch {
    let whole = normalize_whole(text);
    if OPT_OUT_KEYWORDS.contains(&whole.as_str()) {
        return KeywordMatch::OptOut(whole);
    }
    if OPT_IN_KEYWORDS.contains(&whole.as_str()) {
        return KeywordMatch::OptIn(whole);
    }
    if OPT_IN_IF_OPTED_OUT_KEYWORDS.contains(&whole.as_str()) {
        return KeywordMatch::OptInIfOptedOut(whole);
    }
    let words = normalize_words(text);
    let padded = format!(" {words} ");
    for mention in OPT_OUT_MENTIONS {
        if padded.contains(&format!(" {mention} ")) {
            return KeywordMatch::OptOutMention((*mention).to_owned());
        }
    }
    KeywordMatch::None
}

/// Upper-cases, drops everything that is not a letter or digit at either end, and joins the
/// inner words ("Opt-Out!" and "opt out" both become OPTOUT).
fn normalize_whole(text: &str) -> String {
    text.trim_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .filter(|c| !(c.is_whitespace() || *c == '-' || *c == '_' || *c == '.'))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Upper-cased words separated by single spaces; apostrophes vanish ("don't" → DONT).
fn normalize_words(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != '\'' && *c != '’')
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .flat_map(char::to_uppercase)
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: KeywordMatch) {
        assert_eq!(classify(text), expected, "{text:?}");
    }

    #[test]
    fn whole_message_keywords_tolerate_case_space_and_punctuation() {
        for text in [
            "STOP",
            "stop",
            " Stop! ",
            "stop.",
            "¡STOP!",
            "\tStOp\n",
            "Opt-Out",
            "opt out",
            "unsubscribe",
        ] {
            assert!(
                matches!(classify(text), KeywordMatch::OptOut(_)),
                "{text:?}"
            );
        }
        check("arrêt", KeywordMatch::OptOut("ARRÊT".into()));
        check("Start", KeywordMatch::OptIn("START".into()));
        check("unstop!", KeywordMatch::OptIn("UNSTOP".into()));
        check("yes", KeywordMatch::OptInIfOptedOut("YES".into()));
    }

    #[test]
    fn keywords_inside_sentences_are_for_review_not_applied() {
        check("don't stop", KeywordMatch::OptOutMention("STOP".into()));
        check(
            "please stop texting me",
            KeywordMatch::OptOutMention("STOP".into()),
        );
        check(
            "Remove me from your list",
            KeywordMatch::OptOutMention("REMOVE ME".into()),
        );
        check(
            "I want to opt out.",
            KeywordMatch::OptOutMention("OPT OUT".into()),
        );
    }

    #[test]
    fn ordinary_messages_are_ordinary() {
        check("Can we cancel Thursday's viewing?", KeywordMatch::None);
        check("What's the asking price?", KeywordMatch::None);
        check("stopwatch", KeywordMatch::None);
        check("", KeywordMatch::None);
        check("🛑", KeywordMatch::None);
        check("yes please, send the brochure", KeywordMatch::None);
    }
}
