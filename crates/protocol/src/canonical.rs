//! RFC 8785 JSON Canonicalization Scheme (JCS).
//!
//! The SDKs canonicalise a call request's parsed body before checking its signature, so
//! the server must sign (and send) exactly these bytes: object keys sorted by their UTF-16
//! code units, no whitespace, numbers as ECMAScript's `Number.prototype.toString` prints
//! them, and strings with only the escapes JCS allows.

use serde_json::Value;

/// `value` as canonical JSON bytes (RFC 8785).
///
/// Every number is treated as an IEEE-754 double, as JCS requires: integers beyond
/// 2^53 are rounded like JavaScript would round them.
pub fn to_canonical_vec(value: &Value) -> Vec<u8> {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value);
    out.into_bytes()
}

/// `value` as a canonical JSON string (RFC 8785).
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, n: &serde_json::Number) {
    // Integers that a double holds exactly print as themselves; skip the float round trip.
    const EXACT: u64 = 1 << 53;
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= EXACT {
            out.push_str(&i.to_string());
            return;
        }
    } else if let Some(u) = n.as_u64() {
        if u <= EXACT {
            out.push_str(&u.to_string());
            return;
        }
    }
    out.push_str(&format_f64(n.as_f64().unwrap_or(0.0)));
}

/// A finite double printed as ECMAScript's `Number.prototype.toString` does
/// (ECMA-262 `Number::toString`, radix 10). Non-finite values print as `null`.
pub fn format_f64(v: f64) -> String {
    if !v.is_finite() {
        return "null".to_owned();
    }
    if v == 0.0 {
        // Both +0 and -0 print as "0".
        return "0".to_owned();
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as ECMAScript requires.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1;

    let mut s = String::with_capacity(k as usize + 8);
    if v < 0.0 {
        s.push('-');
    }
    if k <= n && n <= 21 {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        s.push_str(&digits[..n as usize]);
        s.push('.');
        s.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', (-n) as usize));
        s.push_str(&digits);
    } else {
        s.push_str(&digits[..1]);
        if k > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if n - 1 < 0 { '-' } else { '+' });
        s.push_str(&(n - 1).abs().to_string());
    }
    s
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_ecmascript_does() {
        // RFC 8785 appendix B plus ECMAScript boundary cases.
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (1e-6, "0.000001"),
            (0.000001234, "0.000001234"),
            (333_333_333.333_333_3, "333333333.3333333"),
            (1e23, "1e+23"),
            (5e-324, "5e-324"),
            (-5e-324, "-5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740992.0, "9007199254740992"),
            (9007199254740994.0, "9007199254740994"),
            (295147905179352830000.0, "295147905179352830000"),
            (4.50, "4.5"),
            (2e-3, "0.002"),
            (1.5e300, "1.5e+300"),
            (f64::NAN, "null"),
        ];
        for (v, want) in cases {
            assert_eq!(format_f64(*v), *want, "{v:?}");
        }
    }

    #[test]
    fn values_canonicalise() {
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"b": 1, "a": [true, null, "x"]}),
                r#"{"a":[true,null,"x"],"b":1}"#,
            ),
            (
                // RFC 8785 §3.2.2.3, parsed from its original text.
                serde_json::from_str(
                    r#"{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001]}"#,
                )
                .unwrap(),
                r#"{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}"#,
            ),
            (
                json!({"string": "\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/"}),
                "{\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}",
            ),
            (
                json!("\u{7f}\u{2028}\u{8}\u{c}\r\t\u{1}"),
                "\"\u{7f}\u{2028}\\b\\f\\r\\t\\u0001\"",
            ),
            (
                json!({"literals": [null, true, false]}),
                r#"{"literals":[null,true,false]}"#,
            ),
            (json!(-0.0), "0"),
            (json!(1796396715787000000u64), "1796396715787000000"),
            (json!(18446744073709551615u64), "18446744073709552000"),
            (json!(-9007199254740993i64), "-9007199254740992"),
            (json!([]), "[]"),
            (json!({}), "{}"),
            (json!({"a": {"d": 1, "c": {}}}), r#"{"a":{"c":{},"d":1}}"#),
        ];
        for (v, want) in cases {
            assert_eq!(to_canonical_string(&v), want);
            assert_eq!(to_canonical_vec(&v), want.as_bytes());
        }
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // RFC 8785 §3.2.3: U+1F600 (surrogates D83D DE00) sorts before U+FB33 in UTF-16,
        // but after it in UTF-8 byte order.
        let v = json!({
            "\u{20ac}": "Euro Sign",
            "\r": "Carriage Return",
            "\u{fb33}": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\u{1f600}": "Emoji: Grinning Face",
            "\u{0080}": "Control",
            "\u{00f6}": "Latin Small Letter O With Diaeresis"
        });
        let got = to_canonical_string(&v);
        let order: Vec<&str> = vec![
            "\\r",
            "1",
            "\u{0080}",
            "\u{00f6}",
            "\u{20ac}",
            "\u{1f600}",
            "\u{fb33}",
        ];
        let mut at = 0;
        for key in order {
            let pos = got[at..].find(&format!("\"{key}\"")).expect(key) + at;
            at = pos;
        }
    }
}
