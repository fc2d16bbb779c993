//! Times opening an existing data folder (profiling aid for start-up, issue 12): raw sled's
//! open with the store's settings, then `Store::open` (sled + magic + tail check + sync), each
//! `WAGATE_OPEN_REPEAT` times (default 3). `cargo run --release -p wagate-store --example
//! open_time -- DIR`; under `perf record -g` to see where sled spends it.

use std::time::Instant;

use wagate_store::{Options, Store};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: open_time DIR");
    let repeat: usize = std::env::var("WAGATE_OPEN_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let options = Options::default();
    for _ in 0..repeat {
        let started = Instant::now();
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(options.cache_capacity_bytes)
            .flush_every_ms(None)
            .open()
            .expect("sled open");
        let sled_open = started.elapsed();
        drop(db);
        let started = Instant::now();
        let store = Store::open(std::path::Path::new(&dir), Options::default()).expect("open");
        let store_open = started.elapsed();
        store.close().expect("close");
        println!(
            "sled_open_ms={:.1} store_open_ms={:.1}",
            sled_open.as_secs_f64() * 1000.0,
            store_open.as_secs_f64() * 1000.0
        );
    }
}
