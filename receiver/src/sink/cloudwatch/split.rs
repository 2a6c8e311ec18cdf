//! Grouping datums into `PutMetricData` requests: at most 1000 datums and
//! 1 MB each, a point's datums kept together.

use std::ops::Range;

use edgepush_protocol::limits::{MAX_DATUMS_PER_REQUEST, MAX_REQUEST_BYTES};

/// Groups items into requests, in order: at most 1000 items per request, and
/// `envelope` plus the items' sizes plus one separator between items at most
/// CloudWatch's 1 MB. The sizes are those of the encoding that will be sent
/// (exact for JSON, an upper bound for CBOR).
///
/// Each item belongs to a point (`(point, item, size)`, points in order);
/// a point's items stay in one request unless they alone overflow one, so
/// a request that fails concerns whole points. Each request comes with the
/// range of points it carries.
pub fn split<T>(
    items: impl IntoIterator<Item = (usize, T, usize)>,
    envelope: usize,
) -> Vec<(Range<usize>, Vec<T>)> {
    struct Open<T> {
        first: usize,
        items: Vec<(usize, T, usize)>,
        bytes: usize,
    }
    let fits = |open: &Open<T>, size: usize| {
        open.items.len() < MAX_DATUMS_PER_REQUEST
            && open.bytes + usize::from(!open.items.is_empty()) + size <= MAX_REQUEST_BYTES
    };
    let mut requests = Vec::new();
    let mut open = Open {
        first: 0,
        items: Vec::new(),
        bytes: envelope,
    };
    let close = |open: &mut Open<T>, end: usize, requests: &mut Vec<(Range<usize>, Vec<T>)>| {
        let items = std::mem::take(&mut open.items);
        requests.push((
            open.first..end,
            items.into_iter().map(|(_, t, _)| t).collect(),
        ));
        open.bytes = envelope;
    };
    for (point, item, size) in items {
        if !open.items.is_empty() && !fits(&open, size) {
            // Move the point's items so far to the next request, unless the
            // point started this one (then it is too large for any).
            let start = open.items.iter().position(|(p, _, _)| *p == point);
            match start {
                Some(0) => {
                    close(&mut open, point + 1, &mut requests);
                    open.first = point;
                }
                Some(start) => {
                    let moved = open.items.split_off(start);
                    close(&mut open, point, &mut requests);
                    open.first = point;
                    for (p, t, size) in moved {
                        open.bytes += usize::from(!open.items.is_empty()) + size;
                        open.items.push((p, t, size));
                    }
                }
                None => {
                    close(&mut open, point, &mut requests);
                    open.first = point;
                }
            }
            if !open.items.is_empty() && !fits(&open, size) {
                // The point's own items fill a request.
                close(&mut open, point + 1, &mut requests);
                open.first = point;
            }
        }
        if open.items.is_empty() {
            open.first = point;
        }
        open.bytes += usize::from(!open.items.is_empty()) + size;
        open.items.push((point, item, size));
    }
    if let Some(&(last, _, _)) = open.items.last() {
        close(&mut open, last + 1, &mut requests);
    }
    requests
}
