//! JSON has no NaN or infinity (serde_json writes them as `null`, which grokscope uses for
//! "undefined"). A diverged model's losses and norms are written as the strings `"NaN"`,
//! `"inf"` and `"-inf"` instead, and read back as such; finite values stay numbers
//! (docs/OUTPUTS.md). Use with `#[serde(with = "nonfinite")]` on `f64` fields and
//! `#[serde(default, with = "nonfinite::option")]` on `Option<f64>` ones.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

fn name(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// A number, or one of the strings for a non-finite one.
#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Num(f64),
    Str(String),
}

fn from_repr<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
    match r {
        Repr::Num(x) => Ok(x),
        Repr::Str(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            other => Err(E::custom(format!(
                "expected a number, \"NaN\", \"inf\" or \"-inf\", got {other:?}"
            ))),
        },
    }
}

pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f64(*x)
    } else {
        s.serialize_str(name(*x))
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match Option::<Repr>::deserialize(d)? {
        Some(r) => from_repr(r),
        None => Err(D::Error::custom("expected a number, got null")),
    }
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(v) => super::serialize(v, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        Option::<Repr>::deserialize(d)?.map(from_repr).transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::metrics::Record;

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let mut r: Record = serde_json::from_str(
            r#"{"step":3,"epoch":3.0,"train_loss":"inf","train_acc":0.5,"test_loss":"NaN",
                "test_acc":0.0,"mem_acc":null,"inv_acc":null,"clean_acc":0.25,"norm_u":"-inf",
                "norm_v":1.0,"norm_w":2.0,"mean_ipr":null,"dead_neurons":0,"batch_loss":"NaN"}"#,
        )
        .unwrap();
        assert_eq!(r.train_loss, f64::INFINITY);
        assert!(r.test_loss.is_nan() && r.batch_loss.unwrap().is_nan());
        assert_eq!((r.norm_u, r.mem_acc), (f64::NEG_INFINITY, None));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""train_loss":"inf""#) && text.contains(r#""mem_acc":null"#));
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
        // Older records have no batch_loss; a finite record is plain numbers.
        r.batch_loss = None;
        r.train_loss = 0.5;
        let text = serde_json::to_string(&r)
            .unwrap()
            .replace(",\"batch_loss\":null", "");
        let back: Record = serde_json::from_str(&text).unwrap();
        assert_eq!(back.batch_loss, None);
        assert!(serde_json::from_str::<Record>(&text.replace("0.5", "\"x\"")).is_err());
    }
}
