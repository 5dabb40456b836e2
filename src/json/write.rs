//! Writing jaq values as JSON text that any JSON reader takes back.

use jaq_json::write::Pp;
use jaq_json::{Num, Val};
use std::io::{self, Write};

/// Writes `v` as JSON, as jaq-json does except for what JSON cannot hold:
/// infinities are written as the largest finite doubles and NaN as `null`,
/// as jq 1.7 does, so that whatever evq writes can be read back as JSON.
///
/// ```
/// use jaq_json::Val;
/// let mut out = Vec::new();
/// let v = Val::Arr(vec![Val::from(f64::INFINITY), Val::from(-f64::INFINITY), Val::from(f64::NAN)].into());
/// evq::json::write_json(&mut out, &Default::default(), 0, &v).unwrap();
/// assert_eq!(out, b"[1.7976931348623157e+308,-1.7976931348623157e+308,null]");
/// ```
pub fn write_json(w: &mut dyn Write, pp: &Pp, level: usize, v: &Val) -> io::Result<()> {
    use jaq_json::{format_val, style, write_utf8};
    match v {
        Val::Num(Num::Float(f)) if !f.is_finite() => {
            let text = if f.is_nan() {
                "null"
            } else if *f > 0.0 {
                "1.7976931348623157e+308"
            } else {
                "-1.7976931348623157e+308"
            };
            style!(w, pp, num, write!(w, "{text}"))
        }
        _ => jaq_json::write_val!(w, pp, level, v, write_json),
    }
}

/// `v` as compact JSON at the end of `out` (memory: it cannot fail).
pub fn write_compact(out: &mut Vec<u8>, v: &Val) {
    write_json(out, &Pp::default(), 0, v).expect("write to memory");
}
