//! [`SqlStore`](crate::SqlStore)'s implementation of each of the store's traits,
//! one file per concern (`riposte_core::store`): the statements of one concern
//! read together, the shared plumbing (connection, row readers, locks) is in
//! `sql.rs`.

mod accounts;
mod boards;
mod budgets;
mod challenges;
mod events;
mod flags;
mod submissions;
