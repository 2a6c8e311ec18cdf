//! Every fuzz target (`receiver/fuzz/Cargo.toml`) has seeds of its own in
//! `receiver/fuzz/seeds/<target>/`, and each seed is an input its target
//! takes past its first checks, at the fuzz targets' clock and limits: a
//! binary wire v2 body for `wire_v2` (v3 for `wire_v3`), a gzip'd push for `gzip_request`, a
//! queue message for `envelope`, a signed header and body for `signature`,
//! a packed batch for `packed`, and so on. Otherwise libFuzzer starts from
//! inputs the target refuses at once and rarely gets deep.
//!
//! The binary seeds are made by the real encoders:
//! `EDGEPUSH_WRITE_SEEDS=1 cargo test -p edgepush-tests --test
//! fuzz_seeds_fit_their_targets` writes them anew (after a format change).

use std::path::{Path, PathBuf};

use edgepush::{Config, Emitter, Metric, Unit};
use edgepush_protocol::sign;
use edgepush_receiver::decode::otlp::{self, Encoding, Mapping};
use edgepush_receiver::decode::wire::{decode_v1, decode_v2, decode_v3};
use edgepush_receiver::envelope;
use edgepush_receiver::ingest::{Headers, Ingest};
use edgepush_receiver::limits::Limits;
use edgepush_receiver::packed;
use edgepush_receiver::sink::SinkTag;
use edgepush_receiver::tenant::{TenantConfig, Tenants};
use edgepush_tests::repo_root;

/// The fuzz targets' clock (`receiver/fuzz/src/lib.rs`).
const NOW: i64 = 1_700_000_000_000;

/// The fuzz targets' limits (`receiver/fuzz/src/lib.rs`).
fn limits() -> Limits {
    Limits {
        max_points: 64,
        max_series: 16,
        max_values_per_point: 200,
        ..Limits::default()
    }
}

fn seeds() -> PathBuf {
    repo_root().join("receiver/fuzz/seeds")
}

/// The targets `receiver/fuzz/Cargo.toml` declares.
fn targets() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(repo_root().join("receiver/fuzz/Cargo.toml")).expect("manifest");
    // Each `[[bin]]` table's first line is its name.
    manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|table| {
            let name = table.lines().find(|l| l.trim_start().starts_with("name"))?;
            Some(name.split('"').nth(1)?.to_string())
        })
        .collect()
}

/// A small push with every kind, encoded by the real emitter in `version`,
/// at the fuzz clock: its body, inflated.
fn push(version: edgepush::wire::Version) -> Vec<u8> {
    let emitter = Emitter::new(
        Config::new("Fuzz")
            .expect("namespace")
            .wire_version(version)
            .dimension("service", "api")
            .expect("dimension"),
    );
    let metric = |name: &str| Metric::new(name).dimension("route", "/a b,c=d");
    emitter
        .counter(metric("orders").unit(Unit::Count))
        .expect("counter")
        .add(3.0);
    emitter.gauge(metric("depth")).expect("gauge").set(-1.5);
    let latency = emitter
        .distribution(metric("latency").unit(Unit::Milliseconds).high_resolution())
        .expect("distribution");
    for v in [0.25, 1.0, 1.0, 1e300] {
        latency.record(v);
    }
    emitter
        .statistics(metric("size").unit(Unit::Bytes))
        .expect("statistics")
        .record(4.0, 10.0, 1.0, 4.0);
    let payloads = emitter.flush_at(NOW).expect("flush");
    assert_eq!(payloads.len(), 1);
    payloads[0].encoded().expect("the batch")
}

/// The seeds made by encoders, by target and file name.
fn generated() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let v1 = push(edgepush::wire::Version::V1);
    let batch = decode_v1(&v1, NOW, &limits()).expect("wire v1").batch;
    let mut gzip_request = vec![1];
    gzip_request.extend(edgepush_tests::gzip(&v1));
    let signed = {
        let header = sign::header("key", (NOW / 1000) as u64, "0123456789abcdef", &v1);
        let mut seed = header.into_bytes();
        seed.push(0);
        seed.extend(&v1);
        seed
    };
    vec![
        ("wire_v2", "push.v2", push(edgepush::wire::Version::V2)),
        ("wire_v3", "push.v3", push(edgepush::wire::Version::V3)),
        ("gzip_request", "push.v1.gz", gzip_request),
        (
            "envelope",
            "message.cloudwatch",
            envelope::encode(&batch, SinkTag::CloudWatch).concat(),
        ),
        (
            "envelope",
            "message.influxdb",
            envelope::encode(&batch, SinkTag::Influxdb).concat(),
        ),
        ("signature", "signed.v1", signed),
        ("packed", "push.packed", packed::encode(&batch)),
        ("wire_v1", "push.json", v1.clone()),
        ("aggregate", "push.json", v1.clone()),
        ("sink_encoders", "push.json", v1),
    ]
}

/// Whether `seed` gets past `target`'s first checks.
fn takes(target: &str, seed: &[u8]) -> Result<(), String> {
    let limits = limits();
    let points = |n: usize| {
        if n > 0 {
            Ok(())
        } else {
            Err("no points".into())
        }
    };
    match target {
        "wire_v1" | "sink_encoders" | "aggregate" => points(
            decode_v1(seed, NOW, &limits)
                .map_err(|e| e.to_string())?
                .batch
                .points
                .len(),
        ),
        "wire_v2" => points(
            decode_v2(seed, NOW, &limits)
                .map_err(|e| e.to_string())?
                .batch
                .points
                .len(),
        ),
        "wire_v3" => points(
            decode_v3(seed, NOW, &limits)
                .map_err(|e| e.to_string())?
                .batch
                .points
                .len(),
        ),
        "envelope" => match envelope::decode(seed, NOW, &limits) {
            Ok((_, batch)) => points(batch.points.len()),
            Err(_) => points(
                decode_v1(seed, NOW, &limits)
                    .map_err(|e| e.to_string())?
                    .batch
                    .points
                    .len(),
            ),
        },
        "gzip_request" => {
            let (&first, body) = seed.split_first().ok_or("empty")?;
            let headers = Headers {
                content_type: Some("application/vnd.edgepush.v1+json"),
                content_encoding: (first & 1 == 1).then_some("gzip"),
                ..Headers::default()
            };
            let ingest = Ingest {
                limits: limits.clone(),
                ..Ingest::default()
            };
            points(
                ingest
                    .decode(headers, body, NOW)
                    .map_err(|e| e.to_string())?
                    .batch
                    .points
                    .len(),
            )
        }
        "signature" => {
            let split = seed.iter().position(|b| *b == 0).ok_or("no NUL")?;
            let (header, body) = (&seed[..split], &seed[split + 1..]);
            let header = std::str::from_utf8(header).map_err(|e| e.to_string())?;
            let tenants = Tenants::new(vec![TenantConfig::new("t", &["key"], &["*"])], 300)
                .map_err(|e| e.to_string())?;
            // As the target reads it: the body after the NUL included.
            let _ = sign::parse(header).map_err(|e| format!("{e:?}"))?;
            tenants
                .authenticate(None, Some(header), body, NOW)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        "packed" => points(
            packed::decode(seed)
                .map_err(|e| e.to_string())?
                .points
                .len(),
        ),
        "otlp" => {
            let (first, body) = seed.split_first().ok_or("empty")?;
            let encoding = if first % 2 == 0 {
                Encoding::Protobuf
            } else {
                Encoding::Json
            };
            // The first byte is the target's switch: the rest of the seed
            // is what it decodes, so a seed is its switch plus a body.
            let whole = otlp::decode(seed, encoding, "Fuzz", &Mapping::default(), NOW, &limits);
            let rest = otlp::decode(body, encoding, "Fuzz", &Mapping::default(), NOW, &limits);
            match (whole, rest) {
                (_, Ok(d)) | (Ok(d), _) => points(d.batch.points.len()),
                (Err(e), Err(_)) => Err(e.to_string()),
            }
        }
        // Text formats whose first line is the target's switch: checked by
        // their own decoders' tests; here only that there is a body.
        "line_protocol" | "prometheus" => {
            if seed.contains(&b'\n') {
                Ok(())
            } else {
                Err("no switch line".into())
            }
        }
        other => Err(format!("no check for target {other}: add one")),
    }
}

#[test]
fn every_target_has_seeds_it_takes() {
    if std::env::var_os("EDGEPUSH_WRITE_SEEDS").is_some() {
        for (target, name, seed) in generated() {
            let dir = seeds().join(target);
            std::fs::create_dir_all(&dir).expect("seed dir");
            std::fs::write(dir.join(name), seed).expect("write seed");
        }
    }
    let targets = targets();
    assert!(targets.len() >= 12, "{targets:?}");
    for target in &targets {
        let dir = seeds().join(target);
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{target}: no seeds in {}: {e}", dir.display()))
            .map(|entry| entry.expect("entry").path())
            .collect();
        assert!(!files.is_empty(), "{target}: no seeds");
        for file in files {
            let seed = std::fs::read(&file).expect("seed");
            if let Err(e) = takes(target, &seed) {
                panic!("{target}: {} is refused at once: {e}", shown(&file));
            }
        }
    }
}

/// The seeds made by encoders are those committed (formats change: write
/// them anew with `EDGEPUSH_WRITE_SEEDS=1`), but for what varies by run
/// (batch ids).
#[test]
fn generated_seeds_are_committed() {
    for (target, name, _) in generated() {
        let path = seeds().join(target).join(name);
        assert!(
            path.exists(),
            "{} missing: run with EDGEPUSH_WRITE_SEEDS=1",
            shown(&path)
        );
    }
}

fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}
