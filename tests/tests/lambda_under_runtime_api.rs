//! The real `lambda-example` binary under this project's own Lambda Runtime
//! and Extensions API (`edgepush_tests::lambda_api`), which does what the
//! local emulator does not: real deadlines, a freeze that waits for the
//! extension, and a receiver that can hang or refuse.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use edgepush_tests::Process;
use edgepush_tests::lambda_api::{
    Capture, LambdaApi, emf_documents, emf_totals, lambda_example_binary, wire_totals,
};
use serde_json::{Value, json};

fn order(tenant: &str, items: u32, cents: u64, payment_ms: f64) -> Value {
    json!({"tenant": tenant, "items": items, "cents": cents, "payment_ms": payment_ms})
}

/// Per metric: (sum, sample count) that `orders` should produce.
fn expected(orders: &[Value], cold: bool) -> BTreeMap<String, (f64, usize)> {
    let mut out = BTreeMap::new();
    if cold {
        out.insert("ColdStart".to_string(), (1.0, 1));
    }
    for o in orders {
        let mut add = |name: &str, v: f64| {
            let e = out.entry(name.to_string()).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        };
        add("orders", 1.0);
        add("items", o["items"].as_f64().unwrap_or_default());
        add("basket_size", o["items"].as_f64().unwrap_or_default());
        add("order_value", o["cents"].as_f64().unwrap_or_default());
        add(
            "payment_latency",
            o["payment_ms"].as_f64().unwrap_or_default(),
        );
    }
    out
}

/// Counters are pushed as one sum per series: compare counters by sum only.
fn comparable(mut totals: BTreeMap<String, (f64, usize)>) -> BTreeMap<String, (f64, usize)> {
    for name in ["ColdStart", "orders", "items"] {
        if let Some(t) = totals.get_mut(name) {
            t.1 = 0;
        }
    }
    totals
}

/// The API, and the function under it pushing to the API's receiver with
/// flush strategy `flush`.
fn start(flush: &str) -> (tempfile::TempDir, LambdaApi, Process) {
    start_with(flush, &[])
}

/// [`start`] with more settings for the function.
fn start_with(flush: &str, more: &[(&str, &str)]) -> (tempfile::TempDir, LambdaApi, Process) {
    let dir = tempfile::tempdir().expect("temp dir");
    let api = LambdaApi::start();
    let url = api.receiver_url();
    let mut env = vec![("EDGEPUSH_URL", url.as_str()), ("EDGEPUSH_FLUSH", flush)];
    env.extend_from_slice(more);
    let function = api.start_function(dir.path(), &lambda_example_binary(), &env);
    (dir, api, function)
}

#[test]
fn end_of_invocation_meets_the_deadline_and_writes_unpushed_batches_as_emf() {
    // The push stops a margin before the deadline, then the batch is
    // written as EMF and the response sent. The default margin (100 ms) is
    // room enough on Lambda; on a loaded 2-core test machine writing and
    // answering can take longer, so this test gives it 400 ms: what it
    // checks is that the push gives way before the deadline, not the
    // default's size.
    let (_dir, api, mut function) = start_with(
        "end-of-invocation",
        &[("EDGEPUSH_DEADLINE_MARGIN_MS", "400")],
    );

    // Receiver up: pushed, nothing written.
    let a = order("acme", 2, 1000, 10.5);
    let first = api.invoke(a.clone(), Duration::from_secs(5));
    assert_eq!(
        first.response.as_ref().expect("answered").1["accepted"],
        true
    );
    let pushed: Vec<Value> = api.captured().into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        comparable(wire_totals(&pushed)),
        comparable(expected(&[a], true))
    );

    // Receiver hangs: the response still comes before the deadline.
    api.set_capture(Capture::Hang);
    let b = order("acme", 3, 250, 99.0);
    let second = api.invoke(b.clone(), Duration::from_millis(1500));
    let (answered, _) = second.response.clone().expect("answered despite the hang");
    assert!(
        answered < second.deadline,
        "answered {:?} after the deadline",
        answered - second.deadline
    );

    // Receiver refuses: written as EMF at once.
    api.set_capture(Capture::Unavailable);
    let c = order("globex", 1, 5, 1.25);
    assert!(
        api.invoke(c.clone(), Duration::from_secs(5))
            .response
            .is_some()
    );

    // Exactly the points of the second and third invocations are in EMF.
    let docs = edgepush_tests::eventually(Duration::from_secs(5), || {
        let docs = emf_documents(&function.log_text());
        assert_eq!(
            comparable(emf_totals(&docs)),
            comparable(expected(&[b.clone(), c.clone()], false)),
            "{}",
            function.log_text()
        );
        docs
    });
    for doc in &docs {
        assert!(
            doc["requestId"]
                .as_str()
                .is_some_and(|r| r.starts_with("req-"))
        );
        assert_eq!(doc["FunctionName"], "orders");
    }
    assert_eq!(api.captured().len(), 1, "nothing more was pushed");
    function.assert_running();
}

#[test]
fn an_unreachable_receiver_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = lambda_example_binary();
    let api = LambdaApi::start();
    let closed = format!("http://127.0.0.1:{}", edgepush_tests::free_port());
    let function = api.start_function(dir.path(), &binary, &[("EDGEPUSH_URL", closed.as_str())]);
    let a = order("acme", 4, 400, 4.0);
    assert!(
        api.invoke(a.clone(), Duration::from_secs(3))
            .response
            .is_some()
    );
    edgepush_tests::eventually(Duration::from_secs(5), || {
        assert_eq!(
            comparable(emf_totals(&emf_documents(&function.log_text()))),
            comparable(expected(std::slice::from_ref(&a), true))
        );
    });
}

#[test]
fn after_response_pushes_between_the_response_and_the_freeze() {
    let (_dir, api, function) = start("after-response");
    let orders = [
        order("acme", 1, 100, 5.0),
        order("acme", 2, 200, 6.0),
        order("globex", 3, 300, 7.0),
    ];
    for (i, o) in orders.iter().enumerate() {
        let invoked = api.invoke(o.clone(), Duration::from_secs(10));
        let (answered, _) = invoked.response.expect("answered");
        let frozen = api
            .frozen(&invoked.request_id, Duration::from_secs(10))
            .expect("the environment froze");
        let captured = api.captured();
        assert_eq!(captured.len(), i + 1, "one push per invocation");
        let (arrived, _) = captured[i];
        assert!(arrived > answered, "pushed before the response");
        assert!(arrived < frozen, "pushed after the freeze");
    }
    assert_eq!(api.extensions(), 1);
    let pushed: Vec<Value> = api.captured().into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        comparable(wire_totals(&pushed)),
        comparable(expected(&orders, true))
    );
    assert!(emf_documents(&function.log_text()).is_empty());
}

/// Lambda gives the runtime 500 ms after SIGTERM when an internal
/// extension is registered (ours is), then kills it: the push must arrive
/// within that. The integration's own budget is 250 ms
/// (`shutdown_budget`); the other 250 ms are slack for a loaded machine.
#[test]
fn periodic_pushes_what_it_buffered_before_lambda_kills_it_after_sigterm() {
    let (_dir, api, mut function) = start("periodic:3600:100000");
    let orders = [order("acme", 1, 100, 5.0), order("initech", 2, 50, 8.5)];
    let mut last = String::new();
    for o in &orders {
        let invoked = api.invoke(o.clone(), Duration::from_secs(10));
        assert!(invoked.response.is_some());
        last = invoked.request_id;
    }
    api.frozen(&last, Duration::from_secs(10)).expect("frozen");
    assert!(api.captured().is_empty(), "periodic pushed early");
    assert_eq!(
        api.extensions(),
        1,
        "registered so that Lambda sends SIGTERM"
    );

    let signalled = Instant::now();
    function.terminate();
    let captured = api.captured();
    let (arrived, _) = captured.first().expect("pushed at SIGTERM");
    assert!(
        *arrived - signalled < Duration::from_millis(500),
        "pushed {:?} after SIGTERM",
        *arrived - signalled
    );
    let pushed: Vec<Value> = captured.into_iter().map(|(_, b)| b).collect();
    assert_eq!(
        comparable(wire_totals(&pushed)),
        comparable(expected(&orders, true))
    );
}
