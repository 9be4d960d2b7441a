//! Request bodies that may be left out: an empty body, or JSON `null`, is the defaults.

use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Parses `body` as JSON `T`; empty (or whitespace) and `null` are `T::default()`. A bad
/// body is a 400 that names `what` and serde's reason.
pub(crate) fn optional_json<T: DeserializeOwned + Default>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice::<Option<T>>(body)
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::invalid(format!("invalid {what} body: {e}")))
}

/// Like [`optional_json`] for a body that is an object of options: anything else but empty
/// or `null` (an array, which serde would read as the struct's fields in order, a string,
/// a number) is a 400 that says what it was.
pub(crate) fn optional_object<T: DeserializeOwned + Default>(
    body: &[u8],
    what: &str,
) -> Result<T, ApiError> {
    let value: serde_json::Value = optional_json(body, what)?;
    let kind = match &value {
        serde_json::Value::Null => return Ok(T::default()),
        serde_json::Value::Object(_) => {
            return serde_json::from_value(value)
                .map_err(|e| ApiError::invalid(format!("invalid {what} body: {e}")));
        }
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
    };
    Err(ApiError::invalid(format!(
        "invalid {what} body: expected a JSON object, got {kind}"
    )))
}

/// Deserializes an optional count of milliseconds: a JSON integer, also when written with a
/// zero fraction (`60000.0` is the integer 60000 in JSON Schema's sense).
pub(crate) fn opt_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::Deserialize;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(v) = n.as_u64() {
        return Ok(Some(v));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(Some(f as u64)),
        _ => Err(serde::de::Error::custom(format!(
            "invalid milliseconds {n}: expected a whole number >= 0"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    struct T {
        #[serde(default, deserialize_with = "super::opt_millis")]
        ms: Option<u64>,
    }

    #[test]
    fn bodies_may_be_empty_or_null_and_millis_may_have_a_zero_fraction() {
        for (body, want) in [
            ("", T::default()),
            (" \n", T::default()),
            ("null", T::default()),
            ("{}", T::default()),
            (r#"{"ms": 60000}"#, T { ms: Some(60000) }),
            (r#"{"ms": 60000.0}"#, T { ms: Some(60000) }),
        ] {
            assert_eq!(
                super::optional_json::<T>(body.as_bytes(), "t").unwrap(),
                want,
                "{body}"
            );
        }
        for bad in [r#"{"ms": 1.5}"#, r#"{"ms": -1}"#, r#"{"ms": "1"}"#, "\"x\""] {
            let err = super::optional_json::<T>(bad.as_bytes(), "test").unwrap_err();
            assert!(
                format!("{:?}", err.0).contains("invalid test body"),
                "{bad}"
            );
        }
        assert_eq!(
            super::optional_object::<T>(b"null", "t").unwrap(),
            T::default()
        );
        assert_eq!(
            super::optional_object::<T>(br#"{"ms": 5.0}"#, "t").unwrap(),
            T { ms: Some(5) }
        );
        for (bad, kind) in [
            ("[]", "an array"),
            ("[5]", "an array"),
            ("7", "a number"),
            ("true", "a boolean"),
        ] {
            let err = super::optional_object::<T>(bad.as_bytes(), "test").unwrap_err();
            let msg = format!("{:?}", err.0);
            assert!(
                msg.contains("expected a JSON object, got") && msg.contains(kind),
                "{bad}: {msg}"
            );
        }
    }
}
