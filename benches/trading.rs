//! Cost of `TradingState::apply` for an in-order stream of cumulative order updates on one symbol
//! that already has 100,000 fills folded: the worker's hot path, which must not grow with the
//! number of fills of the position (nor of the order: each order gets 100 partial fills).

use std::hint::black_box;

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::json;
use tradehook::trading::{parse_event, CanonicalEvent, TradingState};

/// Partial fills per order.
const FILLS_PER_ORDER: u64 = 100;
/// Fills folded before measuring.
const PREFOLDED: u64 = 100_000;

/// The `n`-th update of the stream: order `n / 100` reaches cumulative `n % 100 + 1`, one second
/// after update `n − 1`.
fn update(n: u64) -> CanonicalEvent {
    let base = DateTime::parse_from_rfc3339("2024-01-15T00:00:00Z").expect("valid time").to_utc();
    let at: DateTime<Utc> = base + Duration::seconds(n as i64);
    let order = n / FILLS_PER_ORDER;
    let side = if order % 3 == 2 { "sell" } else { "buy" };
    let raw = json!({"event": "order.updated", "timestamp": at.to_rfc3339(), "data": {
        "orderId": format!("o{order}"), "symbol": "BTC/USD", "side": side, "quantity": FILLS_PER_ORDER,
        "status": "partially_filled", "filledQuantity": n % FILLS_PER_ORDER + 1,
        "averagePrice": 50_000 + order % 7}});
    parse_event(&raw).expect("bench event parses")
}

fn apply(c: &mut Criterion) {
    let mut state = TradingState::new();
    for n in 0..PREFOLDED {
        state.apply(&update(n));
    }
    let mut next = PREFOLDED;
    c.bench_function("apply/in-order-update-after-100k-fills", |b| {
        b.iter_batched(
            || {
                next += 1;
                update(next - 1)
            },
            |event| black_box(state.apply(&event)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, apply);
criterion_main!(benches);
