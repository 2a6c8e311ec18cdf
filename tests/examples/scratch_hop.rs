use std::time::{Instant, SystemTime};
use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::envelope;
use edgepush_receiver::aggregate::Aggregator;
use edgepush_receiver::sink::Encoder as _;
use edgepush_tests::{edge_batch, edge_format, StubSinks};
fn main() {
    let body = edge_batch(edge_format());
    let ingest = Ingest::default();
    let headers = Headers { content_type: Some(edge_format().content_type()), content_encoding: Some("gzip"), ..Headers::default() };
    let now = edgepush::now_ms();
    let batch = ingest.decode(headers, &body, now).expect("valid").batch;
    let n = 300;
    let t = Instant::now();
    for _ in 0..n { std::hint::black_box(ingest.decode(headers, &body, now).unwrap()); }
    println!("decode push {:?}", t.elapsed() / n);
    let t = Instant::now();
    let mut parts = Vec::new();
    for _ in 0..n { parts = edgepush_receiver::packed::split(&batch, 1<<20); }
    println!("pack {:?} ({} parts, {} bytes)", t.elapsed() / n, parts.len(), parts[0].len());
    let t = Instant::now();
    for _ in 0..n { std::hint::black_box(edgepush_receiver::packed::decode(&parts[0]).unwrap()); }
    println!("unpack {:?}", t.elapsed() / n);
    let _ = (envelope::MAX_ENVELOPE_BYTES, Limits::stored());
    let mut agg = Aggregator::new();
    agg.add(&batch);
    let t = Instant::now();
    for _ in 0..n { agg.add(&batch); }
    println!("merge {:?}", t.elapsed() / n);
    let stub = StubSinks::start();
    let sinks = stub.sinks();
    let t = Instant::now();
    for _ in 0..n { for s in &sinks { std::hint::black_box(s.parts(&batch, SystemTime::now()).unwrap()); } }
    println!("sink requests {:?}", t.elapsed() / n);
}
#[allow(dead_code)]
fn unused() {}
