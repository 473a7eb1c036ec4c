//! Request bodies: serde-derived types (the same types generate the OpenAPI request
//! schemas), parsed so that every refusal names the field at fault and says its rule.

use super::error::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON request body.
pub trait RequestBody: DeserializeOwned {
    /// The rule a field's value follows, said when it does not (the message names the
    /// field); `None` for a name that is not a field of the body.
    fn rule(field: &str) -> Option<String>;

    /// What the types cannot say (ranges, lengths, patterns), checked after parsing.
    fn check(&self) -> Result<(), ApiError>;

    /// A 400 naming `field` with its rule.
    fn invalid(field: &str) -> ApiError {
        let message = Self::rule(field).unwrap_or_else(|| format!("{field} is not valid"));
        ApiError::invalid(field.to_string(), message)
    }
}

/// Parses and checks a body: 400 `invalid_json` when it is not a JSON object, 400
/// `invalid_request` naming the field otherwise.
pub fn parse<T: RequestBody>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_json(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_json("the body must be a JSON object"));
    }
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| refusal::<T>(&e))?;
    parsed.check()?;
    Ok(parsed)
}

/// The field a serde error is about: the first step of its path (a wrong value), or the
/// name serde quotes (a missing or unknown field, reported at the top level).
fn refusal<T: RequestBody>(e: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let inner = e.inner().to_string();
    let at = e.path().iter().next().and_then(|s| match s {
        serde_path_to_error::Segment::Map { key } => Some(key.clone()),
        _ => None,
    });
    let quoted = || {
        inner
            .split('`')
            .nth(1)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    };
    match at.or_else(quoted) {
        Some(field) if T::rule(&field).is_some() => {
            if inner.starts_with("missing field") {
                let rule = T::rule(&field).unwrap_or_default();
                ApiError::invalid(field.clone(), format!("{field} is required: {rule}"))
            } else {
                T::invalid(&field)
            }
        }
        // Not one of ours (`unknown field `x`, expected one of …`): serde's words name it.
        Some(field) => ApiError::invalid(field, inner),
        None => ApiError::invalid_json(format!("the body does not fit this request: {inner}")),
    }
}

/// A JSON number that is a whole number, as JSON Schema's `integer` means it: `5` and
/// `5.0` alike (some clients write every number with a fraction), never `5.5`. Integers
/// only, from a float: one beyond ±2^53 could not be exact, so it is refused.
struct Whole(i64);

impl<'de> serde::Deserialize<'de> for Whole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Whole, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                i64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::custom("a whole number out of range"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
                if v.is_finite() && v.fract() == 0.0 && v.abs() <= EXACT {
                    Ok(Whole(v as i64))
                } else {
                    Err(E::invalid_type(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `#[serde(deserialize_with = "whole")]`: a field that is a whole number (see [`Whole`]).
pub fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    <Whole as serde::Deserialize>::deserialize(d).map(|w| w.0)
}

/// [`whole`] for an optional field (`null` or absent is `None`; pair it with `default`).
pub fn whole_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    <Option<Whole> as serde::Deserialize>::deserialize(d).map(|w| w.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        #[serde(deserialize_with = "whole")]
        amount: i64,
        note: Option<String>,
        #[serde(default, deserialize_with = "whole_or_none")]
        wait: Option<i64>,
    }

    impl RequestBody for Probe {
        fn rule(field: &str) -> Option<String> {
            match field {
                "amount" => Some("amount must be a whole number from 1".into()),
                "note" => Some("note must be a string of at most 3 characters".into()),
                "wait" => Some("wait must be a whole number".into()),
                _ => None,
            }
        }

        fn check(&self) -> Result<(), ApiError> {
            if self.amount < 1 {
                return Err(Self::invalid("amount"));
            }
            if self.note.as_ref().is_some_and(|n| n.chars().count() > 3) {
                return Err(Self::invalid("note"));
            }
            Ok(())
        }
    }

    fn refused(body: &str) -> (StatusCode, &'static str, Option<String>, String) {
        let e = parse::<Probe>(body.as_bytes()).expect_err(body);
        (
            e.status(),
            e.code(),
            e.field().map(str::to_string),
            e.message().to_string(),
        )
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let ok = parse::<Probe>(br#"{"amount": 5, "note": null}"#).expect("valid");
        assert_eq!((ok.amount, ok.note, ok.wait), (5, None, None));
        // JSON Schema's integers: a whole number written with a fraction is one.
        let ok = parse::<Probe>(br#"{"amount": 5.0, "wait": 3e2}"#).expect("whole");
        assert_eq!((ok.amount, ok.wait), (5, Some(300)));
        let ok = parse::<Probe>(br#"{"amount": 9007199254740992.0, "wait": null}"#).expect("2^53");
        assert_eq!((ok.amount, ok.wait), (9_007_199_254_740_992, None));
        for (body, field) in [
            (r#"{"amount": "5"}"#, "amount"),
            (r#"{"amount": 1.5}"#, "amount"),
            (r#"{"amount": 0}"#, "amount"),
            (r#"{"amount": 99999999999999999999}"#, "amount"),
            (r#"{"amount": 18014398509481984.0}"#, "amount"),
            (r#"{"amount": 5, "wait": 0.5}"#, "wait"),
            (r#"{"amount": 5, "wait": "7"}"#, "wait"),
            (r#"{"note": "x"}"#, "amount"),
            (r#"{"amount": 5, "note": 7}"#, "note"),
            (r#"{"amount": 5, "note": "long"}"#, "note"),
            (r#"{"amount": 5, "colour": "red"}"#, "colour"),
        ] {
            let (status, code, at, message) = refused(body);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(code, "invalid_request", "{body}");
            assert_eq!(at.as_deref(), Some(field), "{body}");
            assert!(message.contains(field), "{body}: {message}");
        }
        for body in ["{nope", "[1]", "7", ""] {
            let (status, code, at, _) = refused(body);
            assert_eq!(
                (status, code, at),
                (StatusCode::BAD_REQUEST, "invalid_json", None),
                "{body}"
            );
        }
    }
}
