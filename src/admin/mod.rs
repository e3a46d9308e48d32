//! Administration: the actions behind the `ferrolite` CLI (and, later, the JSON admin API).
//!
//! Each action is one async function over the store that validates its input and returns a
//! typed result or an [`AdminError`] whose text tells the operator what to do. The CLI in
//! `cli.rs` only parses arguments and prints.

pub mod access;
pub mod cli;
pub mod doctor;
pub mod exit;
pub mod lock;
pub mod meetings;
pub mod ownership;
pub mod progress;
pub mod recordings;
pub mod servers;
pub mod snapshot;
pub mod status;
pub mod sync;
pub mod tenants;
pub mod views;

use std::fmt;

use crate::store::StoreError;

#[derive(Debug)]
pub enum AdminError {
    /// An id that names nothing.
    NotFound(String),
    /// Input that cannot be accepted, with the reason.
    Invalid(String),
    /// The action would lose something and needs confirmation.
    Refused(String),
    Store(StoreError),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::NotFound(m) | AdminError::Invalid(m) | AdminError::Refused(m) => {
                f.write_str(m)
            }
            AdminError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(what) => {
                AdminError::Invalid(format!("{what} already exists"))
            }
            e => AdminError::Store(e),
        }
    }
}

pub type AdminResult<T> = Result<T, AdminError>;
