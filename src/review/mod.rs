//! Review: what people (and the schedule) do with the ledger's findings once files are
//! decided and records delivered — fix rejected documents and send them back
//! (corrections), and check that the ERP still holds what was delivered, as delivered
//! (reconciliation).

pub mod corrections;
pub mod reconcile;
