//! `Axis<T>`: a value, or a list of values that a fleet sweeps over.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// One value, or a list of values that the fleet sweeps over.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Axis<T> {
    One(T),
    Many(Vec<T>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Axis<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::{value, IntoDeserializer, SeqAccess, Visitor};
        struct V<T>(std::marker::PhantomData<T>);
        macro_rules! scalar {
            ($name:ident, $t:ty) => {
                fn $name<E: serde::de::Error>(self, x: $t) -> std::result::Result<Axis<T>, E> {
                    T::deserialize(IntoDeserializer::<E>::into_deserializer(x)).map(Axis::One)
                }
            };
        }
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Axis<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value or a list of values")
            }
            scalar!(visit_i64, i64);
            scalar!(visit_u64, u64);
            scalar!(visit_f64, f64);
            scalar!(visit_bool, bool);
            fn visit_str<E: serde::de::Error>(self, x: &str) -> std::result::Result<Axis<T>, E> {
                T::deserialize(value::StrDeserializer::<E>::new(x)).map(Axis::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Axis<T>, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Axis::Many(v))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Clone> Axis<T> {
    /// How many values the axis has.
    pub fn len(&self) -> usize {
        match self {
            Axis::One(_) => 1,
            Axis::Many(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn values(&self) -> Vec<T> {
        match self {
            Axis::One(x) => vec![x.clone()],
            Axis::Many(v) => v.clone(),
        }
    }
}

pub fn nonempty<T: Clone>(axis: &Axis<T>, key: &str) -> Result<Vec<T>> {
    let v = axis.values();
    if v.is_empty() {
        return Err(Error::invalid(
            key,
            "the fleet axis is empty: give one value or a non-empty list",
        ));
    }
    Ok(v)
}
