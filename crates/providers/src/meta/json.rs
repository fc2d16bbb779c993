//! A cursor over `serde_json::Value` that knows its path, so a parse error names the exact
//! field (`entry[0].changes[1].value.messages[0].id`) without echoing its value.

use serde_json::{Map, Value};

use crate::ParseError;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'a> {
    value: &'a Value,
    path: &'a str,
}

/// A node plus the owned path string it borrows from; `Node` borrows `path`.
#[derive(Debug)]
pub(crate) struct Owned<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Owned<'a> {
    pub(crate) fn node(&self) -> Node<'_> {
        Node {
            value: self.value,
            path: &self.path,
        }
    }
}

impl<'a> Node<'a> {
    pub(crate) fn root(value: &'a Value) -> Self {
        Self { value, path: "" }
    }

    /// The JSON under this node, for parsers that read it whole.
    pub(crate) fn json(&self) -> &'a Value {
        self.value
    }

    pub(crate) fn child_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    fn object(&self) -> Result<&'a Map<String, Value>, ParseError> {
        self.value
            .as_object()
            .ok_or_else(|| ParseError::invalid(self.path_or_root(), "expected a JSON object"))
    }

    fn path_or_root(&self) -> String {
        if self.path.is_empty() {
            "(root)".to_owned()
        } else {
            self.path.to_owned()
        }
    }

    /// A present, non-null member.
    fn member(&self, name: &str) -> Result<Option<&'a Value>, ParseError> {
        Ok(self.object()?.get(name).filter(|v| !v.is_null()))
    }

    /// A member that must be an object, if present.
    pub(crate) fn obj(&self, name: &str) -> Result<Option<Owned<'a>>, ParseError> {
        match self.member(name)? {
            None => Ok(None),
            Some(value) if value.is_object() => Ok(Some(Owned {
                value,
                path: self.child_path(name),
            })),
            Some(_) => Err(ParseError::invalid(
                self.child_path(name),
                "expected an object",
            )),
        }
    }

    /// A member that must be an object.
    pub(crate) fn req_obj(&self, name: &str) -> Result<Owned<'a>, ParseError> {
        self.obj(name)?
            .ok_or_else(|| ParseError::missing(self.child_path(name)))
    }

    /// A string member, if present (empty strings included: Meta uses them for "unknown").
    pub(crate) fn str(&self, name: &str) -> Result<Option<&'a str>, ParseError> {
        match self.member(name)? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ParseError::invalid(
                self.child_path(name),
                "expected a string",
            )),
        }
    }

    /// A non-empty string member.
    pub(crate) fn req_str(&self, name: &str) -> Result<&'a str, ParseError> {
        self.str(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ParseError::missing(self.child_path(name)))
    }

    /// A non-empty string member, if present.
    pub(crate) fn opt_str(&self, name: &str) -> Result<Option<String>, ParseError> {
        Ok(self.str(name)?.filter(|s| !s.is_empty()).map(str::to_owned))
    }

    /// An array member; absent means empty.
    pub(crate) fn array(&self, name: &str) -> Result<Vec<Owned<'a>>, ParseError> {
        match self.member(name)? {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, value)| Owned {
                    value,
                    path: format!("{}[{i}]", self.child_path(name)),
                })
                .collect()),
            Some(_) => Err(ParseError::invalid(
                self.child_path(name),
                "expected an array",
            )),
        }
    }

    /// Unix seconds; Meta sends them as strings in messages/statuses and as numbers elsewhere.
    pub(crate) fn timestamp(&self, name: &str) -> Result<Option<u64>, ParseError> {
        let invalid = || ParseError::invalid(self.child_path(name), "expected unix seconds");
        match self.member(name)? {
            None => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| invalid()),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    }

    /// A numeric code (Graph sends numbers; tolerate numeric strings).
    pub(crate) fn req_code(&self, name: &str) -> Result<u32, ParseError> {
        let invalid =
            || ParseError::invalid(self.child_path(name), "expected an error code number");
        match self.member(name)? {
            None => Err(ParseError::missing(self.child_path(name))),
            Some(Value::String(s)) => s.parse().map_err(|_| invalid()),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(invalid),
            Some(_) => Err(invalid()),
        }
    }
}
