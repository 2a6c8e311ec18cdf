//! The path (`points[3].x`) of the value at a byte offset of a JSON text, so
//! that a parse error can name the field at fault without a second,
//! path-tracking parse.

/// One step of a path.
#[derive(Debug)]
enum Step {
    /// Inside an object: the last key read, if any.
    Key(Option<String>),
    /// Inside an array: the index of the current element.
    Index(usize),
}

/// The path of the value being read at byte `offset` of `json`, written the
/// way `serde_path_to_error` writes it (`points[3].x`); empty at the root.
/// Reads only up to `offset`, so it works on text that fails to parse.
pub fn at(json: &[u8], offset: usize) -> String {
    let mut stack: Vec<Step> = Vec::new();
    let end = offset.min(json.len());
    let mut i = 0;
    while i < end {
        match json[i] {
            b'{' => stack.push(Step::Key(None)),
            b'[' => stack.push(Step::Index(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => {
                if let Some(Step::Index(n)) = stack.last_mut() {
                    *n += 1;
                }
            }
            b'"' => {
                // A string: a key if an object is open and a ':' follows.
                let start = i + 1;
                let mut j = start;
                while j < json.len() && json[j] != b'"' {
                    j += if json[j] == b'\\' { 2 } else { 1 };
                }
                let mut k = j + 1;
                while k < json.len() && json[k].is_ascii_whitespace() {
                    k += 1;
                }
                // (A key is a key even when the offset falls inside it: an
                // unknown field is reported at the key itself.)
                let is_key =
                    matches!(stack.last(), Some(Step::Key(_))) && json.get(k) == Some(&b':');
                if is_key {
                    let key = String::from_utf8_lossy(&json[start..j.min(json.len())]).into_owned();
                    stack.pop();
                    stack.push(Step::Key(Some(key)));
                }
                i = j;
            }
            _ => {}
        }
        i += 1;
    }
    // At a closing brace or bracket the error is about the container itself
    // (a missing field, a wrong length), not about its last member.
    // So is the end of the text (a body cut short).
    let closing = json.get(end).copied().or(Some(b'$'));
    match (closing, stack.last_mut()) {
        (Some(b'}' | b'$'), Some(Step::Key(key))) => *key = None,
        (Some(b']' | b'$'), Some(Step::Index(_))) => {
            stack.pop();
        }
        _ => {}
    }
    let mut path = String::new();
    for step in &stack {
        match step {
            Step::Key(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Step::Key(None) => {}
            Step::Index(n) => {
                path.push('[');
                path.push_str(&n.to_string());
                path.push(']');
            }
        }
    }
    path
}

/// The byte offset of a 1-based line and column, as serde_json reports them.
pub fn offset(json: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match json[start..].iter().position(|b| *b == b'\n') {
            Some(n) => start += n + 1,
            None => return json.len(),
        }
    }
    (start + column.saturating_sub(1)).min(json.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_before(json: &str, marker: &str) -> String {
        let at_marker = json.find(marker).expect("marker");
        at(json.as_bytes(), at_marker)
    }

    #[test]
    fn paths_table() {
        let json = r#"{"v":1,"series":[{"n":"a","k":"c"},{"n":"b","d":{"x":"1"}}],"points":[{"s":0,"x":1},{"s":1,"x":NaN}]}"#;
        let cases = [
            ("NaN", "points[1].x"),
            (r#""c"}"#, "series[0].k"),
            (r#""1"}"#, "series[1].d.x"),
            ("1,\"series", "v"),
            (r#"{"s":0"#, "points[0]"),
        ];
        for (marker, want) in cases {
            assert_eq!(path_before(json, marker), want, "{marker}");
        }
        assert_eq!(at(b"{", 1), "");
    }

    #[test]
    fn strings_with_brackets_quotes_and_escapes_do_not_confuse_it() {
        let json = r#"{"a":"[{\"]},","b":[1,"x,y",{"c":"\\"}],"d":X}"#;
        assert_eq!(path_before(json, "X"), "d");
        assert_eq!(path_before(json, r#"{"c""#), "b[2]");
    }

    /// The paths agree with serde_path_to_error's (a second, tracking parse)
    /// for every kind of error a wire v1 body can have.
    #[test]
    fn agrees_with_a_path_tracking_parse() {
        let bodies = [
            r#"{"v":1}"#,
            r#"{"v":"1","id":"a","ns":"N","t":0,"series":[],"points":[]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"q"}],"points":[]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"c"}],"points":[{"s":0,"x":NaN}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"c"}],"points":[{"s":0,"x":1e999}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"c"}],"points":[{"s":0,"x":"1"}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"c"}],"points":[{"s":0,"y":1}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"c"}],"points":[{"x":1}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"c","d":{"a":1}}],"points":[]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"d"}],"points":[{"s":0,"vs":[1,"2"]}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[{"n":"a","k":"s"}],"points":[{"s":0,"st":[1,2,3]}]}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[],"points":[],"extra":1}"#,
            r#"{"v":1,"id":"a","ns":"N","t":0,"series":[],"points":[]"#,
        ];
        for body in bodies {
            let fast =
                serde_json::from_slice::<edgepush_protocol::wire::Batch<'_>>(body.as_bytes())
                    .expect_err(body);
            let position = if fast.is_eof() {
                body.len()
            } else {
                offset(body.as_bytes(), fast.line(), fast.column())
            };
            let ours = at(body.as_bytes(), position);
            let de = &mut serde_json::Deserializer::from_slice(body.as_bytes());
            let reference =
                serde_path_to_error::deserialize::<_, edgepush_protocol::wire::Batch<'_>>(de)
                    .expect_err(body)
                    .path()
                    .to_string();
            let reference = if reference == "." || reference == "?" {
                String::new()
            } else {
                reference
            };
            // The reference writes `?` for keys it cannot see (inside our
            // own map visitor); we name them.
            let ours_segments: Vec<&str> = ours.split('.').collect();
            let reference_segments: Vec<&str> = reference.split('.').collect();
            let agree = ours_segments.len() == reference_segments.len()
                && ours_segments
                    .iter()
                    .zip(&reference_segments)
                    .all(|(o, r)| *r == "?" || o == r);
            assert!(
                agree,
                "{body}: {fast}: ours {ours:?}, reference {reference:?}"
            );
        }
    }

    #[test]
    fn line_and_column_to_offset() {
        let json = b"{\n  \"a\": 1,\n  \"b\": x\n}";
        let off = offset(json, 3, 8);
        assert_eq!(json[off], b'x');
        assert_eq!(at(json, off), "b");
    }
}
