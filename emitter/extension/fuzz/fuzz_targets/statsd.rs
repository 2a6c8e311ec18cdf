//! Any datagram into the StatsD reader and the recorder: every line is
//! read or refused (never a panic), and the emitter flushes what was
//! recorded. The first byte picks how signed gauges are read.
#![no_main]

use edgepush::{Config, Emitter};
use edgepush_extension::recorder::{GaugeSigns, Recorder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((switch, datagram)) = data.split_first() else {
        return;
    };
    let signs = if switch % 2 == 0 {
        GaugeSigns::Delta
    } else {
        GaugeSigns::Value
    };
    let config = Config::new("Fuzz").expect("namespace").max_series(64);
    let emitter = Emitter::new(config);
    let mut recorder = Recorder::new(emitter.clone(), signs);
    let refused = recorder.datagram(datagram);
    let counts = recorder.counts();
    assert_eq!(counts.refused as usize, refused.len());
    let lines = edgepush_extension::statsd::parse(datagram).count() as u64;
    assert_eq!(counts.recorded + counts.refused, lines);
    emitter.flush().expect("what was recorded flushes");
});
