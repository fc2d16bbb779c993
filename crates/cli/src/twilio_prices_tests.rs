use std::sync::Mutex;

use wagate_app::FixedClock;
use wagate_domain::MessageStatus;

use super::*;

/// Answers the queued prices per call; records the SIDs asked.
#[derive(Default)]
struct Fake {
    answers: Mutex<VecDeque<Result<Option<MessagePrice>, String>>>,
    asked: Mutex<Vec<String>>,
}

impl PriceSource for Fake {
    fn price<'a>(
        &'a self,
        sid: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Option<MessagePrice>, String>> + Send + 'a>> {
        self.asked.lock().expect("lock").push(sid.to_owned());
        let answer = self
            .answers
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(Ok(None));
        Box::pin(async move { answer })
    }
}

fn logged(position: u64, n: u8, status: MessageStatus, sid: &str) -> LoggedEvent {
    let message_id =
        MessageId::parse(&format!("0193b0c2-7c1e-7d4e-9d7a-1f2e3d4c5b{n:02x}")).expect("id");
    LoggedEvent {
        position,
        stream: format!("message:{message_id}"),
        version: 1,
        event_id: uuid::Uuid::nil(),
        event: Event::Message(MessageEvent::StatusChanged {
            message_id,
            provider_ref: Some(ProviderMessageRef::parse(sid).expect("ref")),
            status,
            error_code: None,
            details: Vec::new(),
            pricing: None,
            at: chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
        }),
        actor: None,
    }
}

const SID_1: &str = "SM0123456789abcdef0123456789abcd01";
const SID_2: &str = "SM0123456789abcdef0123456789abcd02";
const WAMID: &str = "wamid.HBgLNDE3OTAwMDAwMDEVAgASGBQzRUIwQTFDMkQzRTRGNUE2QjdDOAA=";

/// A final Twilio status is priced at once when Twilio knows the price, and kept for a later
/// try when it does not, without holding the batch; non-final and Meta statuses are not asked.
#[tokio::test]
async fn final_twilio_statuses_are_priced_or_kept_for_a_retry() {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
    ));
    let hub = Hub::open_temporary(clock, wagate_domain::Policy::default()).expect("hub");
    let fake = Arc::new(Fake::default());
    fake.answers.lock().expect("lock").extend([
        Ok(Some(MessagePrice {
            amount_micros: 5_000,
            currency: "USD".into(),
        })),
        Ok(None),
    ]);
    let mut follower = PriceFollower::new(Arc::clone(&fake));
    let head = hub.head_position();
    let events = [
        logged(1, 1, MessageStatus::Sent, SID_1),
        logged(2, 1, MessageStatus::Delivered, SID_1),
        logged(3, 2, MessageStatus::Undelivered, SID_2),
        logged(4, 3, MessageStatus::Delivered, WAMID),
    ];
    follower.handle(&hub, &events).await.expect("handled");
    assert_eq!(
        *fake.asked.lock().expect("lock"),
        vec![SID_1.to_owned(), SID_2.to_owned()]
    );
    // One price recorded; the unknown one waits for its retry.
    assert_eq!(hub.head_position(), head + 1);
    assert_eq!(follower.pending(), 1);
    // Not due yet: nothing is asked.
    follower.retry_due(&hub).await;
    assert_eq!(fake.asked.lock().expect("lock").len(), 2);
}

/// A message whose price never comes is tried a bounded number of times, then given up.
#[tokio::test]
async fn a_price_that_never_comes_is_given_up_after_the_bounded_retries() {
    let clock = Arc::new(FixedClock::new(
        chrono::DateTime::from_timestamp(1_764_000_000, 0).expect("time"),
    ));
    let hub = Hub::open_temporary(clock, wagate_domain::Policy::default()).expect("hub");
    let fake = Arc::new(Fake::default());
    let mut follower = PriceFollower::new(Arc::clone(&fake));
    follower
        .handle(&hub, &[logged(1, 1, MessageStatus::Read, SID_1)])
        .await
        .expect("handled");
    for delay in RETRY_DELAYS {
        assert_eq!(follower.pending(), 1);
        let item = &mut follower.pending[0];
        // Scheduled `delay` ahead; waiting that long is simulated by moving it to now.
        assert!(item.due >= Instant::now() + delay - Duration::from_secs(5));
        item.due = Instant::now();
        follower.retry_due(&hub).await;
    }
    assert_eq!(follower.pending(), 0);
    assert_eq!(
        fake.asked.lock().expect("lock").len(),
        1 + RETRY_DELAYS.len()
    );
}
