//! The emitter pushes to the native receiver, which forwards to moto's
//! CloudWatch API and to InfluxDB 1.x; both are read back and must hold
//! exactly the sums, counts, extremes, dimensions and units pushed
//! (`edgepush_tests::scenario`, shared with the workerd test).

use std::time::Duration;

use edgepush_receiver::limits::Limits;
use edgepush_receiver::sink::Sink;
use edgepush_tests::{Influx, Moto, Receiver, cloudwatch_sink, scenario};

#[test]
fn pushed_metrics_arrive_exactly_in_cloudwatch_and_influxdb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut moto = Moto::start(dir.path());
    let influx = Influx::start(dir.path());
    let receiver = Receiver::start(
        vec![cloudwatch_sink(&moto), Sink::Influxdb(influx.target())],
        Limits::default(),
        vec!["secret-key".into()],
    );
    scenario::push_and_read_back(&receiver.url, &mut moto, &influx, Duration::ZERO);
    moto.stop();
}
