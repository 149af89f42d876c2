//! `FieldErrors`: DRF's validation error body, `{"field": ["message", …]}`, collected
//! field by field so that one answer names every bad field at once (STYLE.md P2).

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Validation messages per field, in the order the fields were checked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FieldErrors(Vec<(String, Vec<String>)>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// One field with one message: the common case for a single failed rule.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.add_all(field, vec![message.into()]);
    }

    pub fn add_all(&mut self, field: &str, messages: Vec<String>) {
        match self.0.iter_mut().find(|(name, _)| name == field) {
            Some((_, existing)) => existing.extend(messages),
            None => self.0.push((field.to_owned(), messages)),
        }
    }

    /// Keeps the value of an `Ok`, or records the messages of an `Err` under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, Vec<String>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(messages) => {
                self.add_all(field, messages);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, else the errors themselves.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }
}

impl Serialize for FieldErrors {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, messages) in &self.0 {
            map.serialize_entry(field, messages)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_for_one_field_are_gathered_under_it() {
        let mut errors = FieldErrors::new();
        errors.add("password", "a");
        errors.add("username", "b");
        errors.add("password", "c");
        let json = serde_json::to_value(&errors).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"password": ["a", "c"], "username": ["b"]})
        );
    }
}
