//! Events: strict validation of one input line as a JSON text (RFC 8259, UTF-8),
//! and parsing it into a jaq value for the stages.

use jaq_json::Val;

/// Checks that `line` is exactly one valid JSON value; the error says why not.
pub fn validate(line: &[u8]) -> Result<(), String> {
    if let Err(e) = std::str::from_utf8(line) {
        return Err(format!("invalid UTF-8 at byte {}", e.valid_up_to() + 1));
    }
    serde_json::from_slice::<Valid>(line)
        .map(|_| ())
        .map_err(|e| {
            // serde_json says "... at line 1 column N"; a line has one line.
            let text = e.to_string();
            let reason = text
                .rsplit_once(" at line ")
                .map_or(text.as_str(), |(r, _)| r);
            format!("invalid JSON: {reason} at column {}", e.column())
        })
}

/// A JSON value checked and thrown away. Unlike `IgnoredAny`, it goes
/// through `deserialize_any`, so serde_json's nesting limit (128) and its
/// checks of string escapes (lone surrogates) apply: a line is then valid or
/// not whether or not a stage parses it into a value.
struct Valid;

impl<'de> serde::Deserialize<'de> for Valid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Valid, D::Error> {
        d.deserialize_any(Valid)
    }
}

impl<'de> serde::de::Visitor<'de> for Valid {
    type Value = Valid;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_entry::<Valid, Valid>()?.is_some() {}
        Ok(Valid)
    }
}

/// Parses a line that `validate` accepted into a jaq value, keeping jaq's
/// number representation (big integers, decimal spelling).
pub fn parse(line: &[u8]) -> Result<Val, String> {
    validate(line)?;
    jaq_json::read::parse_single(line).map_err(|e| format!("invalid JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_json_and_rejects_the_rest() {
        assert!(validate(br#"{"a":[1,2.5e3,"\u00e9",null,true]}"#).is_ok());
        assert!(validate(b"  42  ").is_ok());
        assert_eq!(
            validate(b"{\"a\":1} {\"b\":2}").unwrap_err(),
            "invalid JSON: trailing characters at column 9"
        );
        assert!(
            validate(b"{\"a\":")
                .unwrap_err()
                .starts_with("invalid JSON: EOF while parsing")
        );
        assert_eq!(
            validate(b"\"caf\xe9\"").unwrap_err(),
            "invalid UTF-8 at byte 5"
        );
        assert!(validate(b"NaN").is_err());
        assert!(validate(b"[1,]").is_err());
        assert!(validate(b"# comment").is_err());
        assert!(validate(br#""\ud800""#).is_err(), "lone surrogate");
        let deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert_eq!(
            validate(deep.as_bytes()).unwrap_err(),
            "invalid JSON: recursion limit exceeded at column 128"
        );
        let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
        assert!(validate(ok.as_bytes()).is_ok());
    }

    #[test]
    fn parse_keeps_decimal_spelling() {
        let v = parse(b"[1.50, 100000000000000000000000]").unwrap();
        assert_eq!(v.to_string(), "[1.50,100000000000000000000000]");
    }
}
