//! Consent receipts survive opt-outs, so a receipt can be produced for any contact.

use wagate_domain::decide::{self, RecordOptIn};
use wagate_domain::{Consent, ConsentReceipt, OptInSource, OptOutSource};

use crate::support::*;

#[test]
fn an_opt_in_records_its_provenance() {
    let mut fx = Fx::empty();
    fx.opt_in(OptInSource::QrCode, t0());
    assert_eq!(
        fx.contact.consent,
        Consent::OptedIn(ConsentReceipt {
            source: OptInSource::QrCode,
            evidence: "https://acme.example/form/42".into(),
            recorded_by: "agent:lea".into(),
            wording_version: published_wording_version(),
            evidence_at: t0(),
            at: t0(),
        })
    );
}

#[test]
fn the_withdrawn_receipt_is_kept_across_opt_outs() {
    let mut fx = Fx::empty();
    fx.opt_in(OptInSource::WebForm, t0());
    let receipt = match &fx.contact.consent {
        Consent::OptedIn(receipt) => receipt.clone(),
        other => panic!("{other:?}"),
    };
    fx.inbound("text", "STOP", t0() + hours(1));
    match &fx.contact.consent {
        Consent::OptedOut {
            source,
            withdrawn,
            at,
            ..
        } => {
            assert_eq!(*source, OptOutSource::Keyword);
            assert_eq!(*at, t0() + hours(1));
            assert_eq!(withdrawn.as_ref(), Some(&receipt));
        }
        other => panic!("{other:?}"),
    }
    // A second opt-out (a provider report replayed from the log) keeps the same receipt.
    fx.apply(&[wagate_domain::ContactEvent::OptedOut {
        contact: fx.contact_id.clone(),
        source: OptOutSource::ProviderReport,
        detail: "twilio error 63014".into(),
        evidence_at: t0() + hours(2),
        at: t0() + hours(2),
    }
    .into()]);
    assert!(matches!(
        &fx.contact.consent,
        Consent::OptedOut { source: OptOutSource::ProviderReport, withdrawn: Some(w), .. } if *w == receipt
    ));
    // The operator command is idempotent.
    let before = fx.log.len();
    fx.opt_out(t0() + hours(3));
    assert_eq!(fx.log.len(), before);

    // An opt-out with no opt-in before it withdraws nothing.
    let mut fx = Fx::empty();
    fx.opt_out(t0());
    assert!(matches!(
        fx.contact.consent,
        Consent::OptedOut {
            withdrawn: None,
            ..
        }
    ));
}

#[test]
fn every_opt_in_is_a_new_receipt_and_needs_its_evidence() {
    let mut fx = Fx::empty();
    fx.opt_in(OptInSource::WebForm, t0());
    fx.opt_in(OptInSource::Operator, t0() + hours(1));
    assert_eq!(type_names(&fx.log), ["OptedIn", "OptedIn"]);
    assert!(matches!(
        &fx.contact.consent,
        Consent::OptedIn(r) if r.source == OptInSource::Operator
    ));
    for (evidence, recorded_by, wording) in
        [("", "ops", "v1"), ("form", " ", "v1"), ("form", "ops", "")]
    {
        let command = RecordOptIn {
            contact: fx.contact_id.clone(),
            source: OptInSource::Api,
            evidence: evidence.into(),
            recorded_by: recorded_by.into(),
            wording_version: wording.into(),
            evidence_at: None,
        };
        assert!(decide::opt_in(&fx.contact, &published_wording(), &command, t0()).is_err());
    }
}

#[test]
fn an_opt_in_citing_an_unpublished_wording_is_refused_and_names_it() {
    let fx = Fx::empty();
    let version = published_wording_version();
    let command = |wording_version: &str| RecordOptIn {
        contact: fx.contact_id.clone(),
        source: OptInSource::Api,
        evidence: "form".into(),
        recorded_by: "ops".into(),
        wording_version: wording_version.into(),
        evidence_at: None,
    };
    // Made up, or a real version checked against another version's stream: both refused.
    for (stream, cited) in [
        (wagate_domain::ConsentState::default(), version.as_str()),
        (published_wording(), "v1"),
        (wagate_domain::ConsentState::default(), "unversioned"),
    ] {
        match decide::opt_in(&fx.contact, &stream, &command(cited), t0()) {
            Err(decide::CommandError::InvalidField { field, reason }) => {
                assert_eq!(field, "wording_version");
                assert!(reason.contains(cited), "{reason}");
            }
            other => panic!("{cited}: {other:?}"),
        }
    }
    let events = decide::opt_in(&fx.contact, &published_wording(), &command(&version), t0())
        .expect("published");
    assert_eq!(events.len(), 1);
}
