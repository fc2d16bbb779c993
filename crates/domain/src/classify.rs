//! Provider error classification: which errors may be retried, and what each one tells us about
//! the contact, the sender or the template. Codes and meanings: docs/providers.md, "Twilio error
//! codes" and "Meta error codes".

/// Which provider produced an error code: Twilio and Meta codes overlap numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Twilio,
    Meta,
    /// The loopback sandbox speaks Twilio's codes.
    Sandbox,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Meta => "meta",
            Self::Sandbox => "sandbox",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        [Self::Twilio, Self::Meta, Self::Sandbox]
            .into_iter()
            .find(|kind| kind.as_str() == input)
    }
}

/// Whether the same request may succeed later without a person doing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retry {
    Retryable,
    Permanent,
}

/// What an error means beyond this one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FollowUp {
    /// The 24 h window is closed as far as the provider is concerned (63016, 131047).
    WindowClosed,
    /// The recipient is not a WhatsApp user (63003, 63024, 131026).
    NotOnWhatsapp,
    /// The recipient stopped marketing messages (131050).
    MarketingPaused,
    /// The sender itself is misconfigured: suspend the sender, not the contact (63007, 63001, 133010, 368, 131031).
    SuspendSender,
    /// The recipient blocked the business (63014): treated as an opt-out.
    OptOut,
    /// The template is missing, paused or disabled at the provider (63041, 132001, 132015, 132016).
    TemplateNotApproved,
    /// The variables did not fit the template (21656, 63028, 132000, 132012).
    TemplateVariables,
    /// The number is invalid (21211).
    InvalidNumber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorClass {
    pub retry: Retry,
    pub follow_up: Option<FollowUp>,
}

const fn permanent(follow_up: Option<FollowUp>) -> ErrorClass {
    ErrorClass {
        retry: Retry::Permanent,
        follow_up,
    }
}

const RETRYABLE: ErrorClass = ErrorClass {
    retry: Retry::Retryable,
    follow_up: None,
};

/// Classifies a provider error code. Unknown codes are permanent: retrying what we do not
/// understand risks duplicate sends, and a person sees the failure.
pub fn classify_code(provider: ProviderKind, code: u32) -> ErrorClass {
    use FollowUp::*;
    match provider {
        ProviderKind::Twilio | ProviderKind::Sandbox => match code {
            63012 | 63018 | 20429 | 20500 | 20503 => RETRYABLE,
            63016 => permanent(Some(WindowClosed)),
            63003 | 63024 => permanent(Some(NotOnWhatsapp)),
            63007 | 63001 => permanent(Some(SuspendSender)),
            63014 => permanent(Some(OptOut)),
            63041 => permanent(Some(TemplateNotApproved)),
            21656 | 63028 => permanent(Some(TemplateVariables)),
            21211 => permanent(Some(InvalidNumber)),
            _ => permanent(None),
        },
        ProviderKind::Meta => match code {
            1 | 2 | 4 | 80007 | 130429 | 131000 | 131016 | 131056 | 133004 => RETRYABLE,
            131047 => permanent(Some(WindowClosed)),
            131026 => permanent(Some(NotOnWhatsapp)),
            131050 => permanent(Some(MarketingPaused)),
            368 | 131031 | 133010 => permanent(Some(SuspendSender)),
            132001 | 132015 | 132016 => permanent(Some(TemplateNotApproved)),
            132000 | 132012 => permanent(Some(TemplateVariables)),
            _ => permanent(None),
        },
    }
}

/// Classifies a failure that carried no provider code: HTTP 429 and 5xx are retryable, every
/// other HTTP error is permanent.
pub fn classify_http_status(status: u16) -> ErrorClass {
    if status == 429 || (500..600).contains(&status) {
        RETRYABLE
    } else {
        permanent(None)
    }
}

/// Timeouts and connection errors: the request may not have reached the provider, or may have.
/// Retryable, but the dispatcher only retries after a claim that records the attempt.
pub fn classify_transport() -> ErrorClass {
    RETRYABLE
}

#[cfg(test)]
mod tests {
    use super::*;
    use FollowUp::*;
    use ProviderKind::*;

    #[test]
    fn every_classified_twilio_code() {
        let cases: &[(u32, Retry, Option<FollowUp>)] = &[
            (63012, Retry::Retryable, None),
            (63018, Retry::Retryable, None),
            (20429, Retry::Retryable, None),
            (20500, Retry::Retryable, None),
            (20503, Retry::Retryable, None),
            (63016, Retry::Permanent, Some(WindowClosed)),
            (63003, Retry::Permanent, Some(NotOnWhatsapp)),
            (63024, Retry::Permanent, Some(NotOnWhatsapp)),
            (63007, Retry::Permanent, Some(SuspendSender)),
            (63001, Retry::Permanent, Some(SuspendSender)),
            (63014, Retry::Permanent, Some(OptOut)),
            (63041, Retry::Permanent, Some(TemplateNotApproved)),
            (21656, Retry::Permanent, Some(TemplateVariables)),
            (63028, Retry::Permanent, Some(TemplateVariables)),
            (21211, Retry::Permanent, Some(InvalidNumber)),
            // 63032 is an experiment limitation, not an opt-out; 63005 is ambiguous.
            (63032, Retry::Permanent, None),
            (63005, Retry::Permanent, None),
            (99999, Retry::Permanent, None),
        ];
        for (code, retry, follow_up) in cases {
            for provider in [Twilio, Sandbox] {
                assert_eq!(
                    classify_code(provider, *code),
                    ErrorClass {
                        retry: *retry,
                        follow_up: *follow_up
                    },
                    "{code}"
                );
            }
        }
    }

    #[test]
    fn every_classified_meta_code() {
        let cases: &[(u32, Retry, Option<FollowUp>)] = &[
            (1, Retry::Retryable, None),
            (2, Retry::Retryable, None),
            (4, Retry::Retryable, None),
            (80007, Retry::Retryable, None),
            (130429, Retry::Retryable, None),
            (131000, Retry::Retryable, None),
            (131016, Retry::Retryable, None),
            (131056, Retry::Retryable, None),
            (133004, Retry::Retryable, None),
            (131047, Retry::Permanent, Some(WindowClosed)),
            (131026, Retry::Permanent, Some(NotOnWhatsapp)),
            (131050, Retry::Permanent, Some(MarketingPaused)),
            (368, Retry::Permanent, Some(SuspendSender)),
            (131031, Retry::Permanent, Some(SuspendSender)),
            (133010, Retry::Permanent, Some(SuspendSender)),
            (132001, Retry::Permanent, Some(TemplateNotApproved)),
            (132015, Retry::Permanent, Some(TemplateNotApproved)),
            (132016, Retry::Permanent, Some(TemplateNotApproved)),
            (132000, Retry::Permanent, Some(TemplateVariables)),
            (132012, Retry::Permanent, Some(TemplateVariables)),
            (100, Retry::Permanent, None),
            (190, Retry::Permanent, None),
            (130472, Retry::Permanent, None),
        ];
        for (code, retry, follow_up) in cases {
            assert_eq!(
                classify_code(Meta, *code),
                ErrorClass {
                    retry: *retry,
                    follow_up: *follow_up
                },
                "{code}"
            );
        }
        // The same number means different things at different providers.
        assert_ne!(classify_code(Meta, 63016), classify_code(Twilio, 63016));
    }

    #[test]
    fn http_and_transport_failures() {
        assert_eq!(classify_http_status(429).retry, Retry::Retryable);
        assert_eq!(classify_http_status(503).retry, Retry::Retryable);
        assert_eq!(classify_http_status(400).retry, Retry::Permanent);
        assert_eq!(classify_http_status(401).retry, Retry::Permanent);
        assert_eq!(classify_transport().retry, Retry::Retryable);
    }
}
