//! CNI errors: the spec's well-known codes and ours (100 and up), printed as the spec's error
//! JSON on stdout.

use serde_json::{Value, json};

/// Error codes. 1-99 are the spec's (section "Error"); 100 and up are sart's, documented in
/// docs/usage.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    Io,
    Decoding,
    InvalidConfig,
    TryAgainLater,
    /// STATUS: cannot serve ADD.
    NotAvailable,
    /// STATUS: cannot serve ADD, and existing pods may have limited connectivity.
    LimitedConnectivity,
    /// The agent answered with an error of its own (the message says which).
    Agent,
    /// A requested static address is taken or in no pool.
    AddressUnavailable,
    /// No pool applies, or the pool has no address left.
    PoolExhausted,
}

impl Code {
    const ALL: [Code; 13] = [
        Code::IncompatibleVersion,
        Code::UnsupportedField,
        Code::UnknownContainer,
        Code::InvalidEnvironment,
        Code::Io,
        Code::Decoding,
        Code::InvalidConfig,
        Code::TryAgainLater,
        Code::NotAvailable,
        Code::LimitedConnectivity,
        Code::Agent,
        Code::AddressUnavailable,
        Code::PoolExhausted,
    ];

    /// The code of a number; an unknown number is the agent's own error.
    pub fn from_number(n: u32) -> Code {
        Code::ALL
            .into_iter()
            .find(|c| c.number() == n)
            .unwrap_or(Code::Agent)
    }

    pub fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decoding => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::NotAvailable => 50,
            Code::LimitedConnectivity => 51,
            Code::Agent => 100,
            Code::AddressUnavailable => 101,
            Code::PoolExhausted => 102,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("CNI error {} ({code:?}): {msg}", code.number())]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn details(mut self, d: impl Into<String>) -> CniError {
        self.details = d.into();
        self
    }

    /// The error JSON, in `version`: the configuration's as written (even one we do not
    /// support, so the runtime can tell), or our newest when there is none to read.
    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({
            "cniVersion": version,
            "code": self.code.number(),
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = Value::from(self.details.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_code_is_found_by_its_number() {
        for c in Code::ALL {
            assert_eq!(Code::from_number(c.number()), c);
        }
        assert_eq!(Code::from_number(999), Code::Agent);
    }

    #[test]
    fn json_shape() {
        let e = CniError::new(Code::InvalidEnvironment, "CNI_IFNAME missing").details("ADD");
        assert_eq!(
            e.to_json("1.0.0"),
            json!({"cniVersion": "1.0.0", "code": 4, "msg": "CNI_IFNAME missing", "details": "ADD"})
        );
        let e = CniError::new(Code::NotAvailable, "no BGP session");
        assert_eq!(e.to_json("1.1.0")["code"], 50);
        assert!(e.to_json("1.1.0").get("details").is_none());
    }
}
