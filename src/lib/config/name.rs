//! Names that can only hold valid values: a partition or node-group name is
//! letters and digits (a safe part of a node name, a tag value and an EC2
//! filter); a cluster name has no whitespace and nothing EC2 filters read as
//! a pattern.

use std::fmt;

macro_rules! word {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// `^[a-zA-Z0-9]+$`, or why not.
            pub fn parse(text: &str) -> Result<Self, String> {
                if !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    Ok(Self(text.to_string()))
                } else {
                    Err(format!(
                        "must match ^[a-zA-Z0-9]+$ (letters and digits only), got {text:?}"
                    ))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

word!(
    /// A partition's `PartitionName`.
    PartitionName
);
word!(
    /// A node group's `NodeGroupName`.
    NodeGroupName
);

/// Refuses a value that EC2 would read as a pattern in a filter: `*` and `?`
/// are wildcards there and `\\` escapes them, so `prod*` would also match `prod2`.
fn check_filter_literal(value: &str) -> Result<(), String> {
    match value.chars().find(|c| matches!(c, '*' | '?' | '\\')) {
        Some(c) => Err(format!(
            "must not hold {c:?}: EC2 filters read it as a wildcard or an escape, so the value would match other clusters' instances"
        )),
        None if value.contains(char::is_control) => {
            Err("must not hold control characters".to_string())
        }
        None => Ok(()),
    }
}

/// `ClusterName`: scopes every EC2 search, so it must match itself alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > 255 || text.contains(char::is_whitespace) {
            return Err("must be at most 255 characters without whitespace".to_string());
        }
        check_filter_literal(text)?;
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_names_exist() {
        assert_eq!(PartitionName::parse("aws1").unwrap().as_str(), "aws1");
        assert!(PartitionName::parse("aws_1").is_err() && NodeGroupName::parse("").is_err());
        assert!(ClusterName::parse("prod").is_ok());
        for bad in ["prod*", "p?", "a b", "", "a\\b"] {
            assert!(ClusterName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
